//! Certificates read from a card, kept across processes: every browser start (and every
//! PKCS#11 module load) is a new process, and on a real CAC re-reading a certificate costs a
//! second or more.
//!
//! Certificates are public, but a cache must never show one card's certificates for another.
//! An entry is used only while pcscd itself vouches that the card never left the reader:
//! - the same pcscd instance (boot id, pcscd's pid and its start time): a restarted pcscd
//!   restarts the counters below, so an entry from another instance is never trusted;
//! - the same reader, and pcscd's event counter for that reader unchanged: pcscd bumps it on
//!   every insertion and removal, so a card swapped for another (even one with the same CHUID
//!   and ATR) always has a new count;
//! - the same ATR;
//! - each certificate's SHA-256 matching the id it is stored under (a damaged file is dropped).
//!
//! Nothing is read from the card to check this: the card identity the CHUID carries costs a
//! ~2.8 KB read on a real CAC (more than the authentication certificate itself), and test
//! cards repeat it. Anything else (no pcscd pid file, another platform) disables the cache.
//!
//! The file is `$XDG_CACHE_HOME/cacbridge/cards.json` (or `~/.cache/...`), mode 0600 in a
//! 0700 directory, written whole to a temporary file and renamed, at most [`MAX_ENTRIES`]
//! cards (the most recently stored kept) and [`MAX_FILE_BYTES`] bytes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::model::{CardType, Purpose, Slot};

pub const MAX_ENTRIES: usize = 8;
pub const MAX_FILE_BYTES: u64 = 512 * 1024;
const FORMAT: u32 = 1;

/// Who is counting card events: one run of pcscd on one boot.
pub fn pcscd_instance() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    // pcscd writes its pid with a trailing NUL.
    let pid: u32 = std::fs::read_to_string("/run/pcscd/pcscd.pid")
        .ok()?
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (start time); the command name in field 2 may hold spaces, so count from ')'.
    let started = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?;
    Some(format!("{}:{pid}:{started}", boot.trim()))
}

/// What the cache knows of one card, as the card layer hands it over and gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRecord {
    pub reader: String,
    pub event_count: u32,
    pub atr: Vec<u8>,
    pub card_type: CardType,
    pub dual_cac: Option<bool>,
    pub read: Vec<Purpose>,
    pub certificates: Vec<(Slot, Vec<u8>)>,
}

#[derive(Serialize, Deserialize, Default)]
struct File {
    format: u32,
    entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    pcscd: String,
    reader: String,
    event_count: u32,
    atr: String,
    card_type: String,
    dual_cac: Option<bool>,
    read: Vec<String>,
    certificates: Vec<StoredCertificate>,
    stored_at: u64,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredCertificate {
    slot: String,
    sha256: String,
    der: String,
}

pub struct DiskCache {
    path: PathBuf,
    /// This pcscd's identity, found once per process.
    pcscd: String,
}

impl DiskCache {
    /// The per-user cache, if this machine lets us prove which pcscd counts the events. None
    /// for root on a cache under another user's home (`sudo -E cacbridge-host list`): that
    /// user's file and links are not for root to read or write.
    pub fn for_user() -> Option<Self> {
        Self::at(user_file()?)
    }

    /// Delete the per-user cache and its directory (the package's removal runs this as each
    /// person): the file's path if there was one. A leftover temporary file keeps the
    /// directory, which is then left as it is.
    pub fn forget_for_user() -> std::io::Result<Option<PathBuf>> {
        let Some(path) = user_file() else {
            return Ok(None);
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
                Ok(Some(path))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub fn at(path: PathBuf) -> Option<Self> {
        Some(Self {
            path,
            pcscd: pcscd_instance()?,
        })
    }

    /// A cache at `path` for the pcscd instance named `pcscd` (tests over a scripted service).
    #[cfg(test)]
    pub(crate) fn for_instance(path: PathBuf, pcscd: &str) -> Self {
        Self {
            path,
            pcscd: pcscd.to_owned(),
        }
    }

    /// The record for the card in `reader`, if it is the very insertion the record was made
    /// of. A record of an earlier insertion in that reader is deleted.
    pub fn load(&self, reader: &str, event_count: u32, atr: &[u8]) -> Option<CardRecord> {
        let mut file = self.read();
        let position = file.entries.iter().position(|e| e.reader == reader)?;
        let entry = &file.entries[position];
        let record = (entry.pcscd == self.pcscd
            && entry.event_count == event_count
            && entry.atr == hex::encode(atr))
        .then(|| entry.record())
        .flatten();
        if record.is_none() {
            file.entries.remove(position);
            self.write(file);
        }
        record
    }

    /// Forget what is kept of the card in `reader` (its certificates were found rewritten).
    pub fn forget(&self, reader: &str) {
        let mut file = self.read();
        let before = file.entries.len();
        file.entries.retain(|e| e.reader != reader);
        if file.entries.len() != before {
            self.write(file);
        }
    }

    /// Keep `record`, replacing the reader's previous one.
    pub fn store(&self, record: &CardRecord) {
        let mut file = self.read();
        file.entries.retain(|e| e.reader != record.reader);
        // First, so that among entries stored in the same second the newest is kept.
        file.entries
            .insert(0, Entry::from_record(record, &self.pcscd));
        file.entries.sort_by_key(|e| std::cmp::Reverse(e.stored_at));
        file.entries.truncate(MAX_ENTRIES);
        self.write(file);
    }

    fn read(&self) -> File {
        let Ok(metadata) = std::fs::metadata(&self.path) else {
            return File::default();
        };
        if metadata.len() > MAX_FILE_BYTES {
            return File::default();
        }
        std::fs::read(&self.path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<File>(&bytes).ok())
            .filter(|file| file.format == FORMAT)
            .unwrap_or_default()
    }

    /// Best effort: a cache that cannot be written is a slower next start, nothing more.
    fn write(&self, mut file: File) {
        file.format = FORMAT;
        let Ok(mut bytes) = serde_json::to_vec(&file) else {
            return;
        };
        while bytes.len() as u64 > MAX_FILE_BYTES && !file.entries.is_empty() {
            file.entries.pop();
            bytes = serde_json::to_vec(&file).unwrap_or_default();
        }
        if let Err(err) = write_private(&self.path, &bytes) {
            tracing::info!(path = %self.path.display(), %err, "certificate cache not written");
        }
    }
}

/// Whether this process runs as root and `path` (or the nearest part of it that exists)
/// belongs to another user.
fn root_among_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        // The effective uid decides what this process may touch (not /proc/self's owner,
        // which a non-dumpable process may see change).
        if !rustix::process::geteuid().is_root() {
            return false;
        }
        let uid = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| m.uid());
        path.ancestors()
            .find_map(uid)
            .is_some_and(|owner| owner != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Write `bytes` to `path` through a temporary file (mode 0600, created new: never through a
/// link or a file someone left there) renamed over it, in a directory only the user can
/// enter.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    let temporary = dir.join(format!(".cards.{}.tmp", std::process::id()));
    // A leftover of a process that had this pid: removing a link removes the link only.
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = options
        .open(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Where this user's cache is: `$XDG_CACHE_HOME/cacbridge/cards.json`, else under
/// `~/.cache`. None without either, and for root on another user's files.
fn user_file() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|home| home.join(".cache")))?;
    if root_among_others(&base) || home.is_some_and(|home| root_among_others(&home)) {
        tracing::debug!("no certificate cache: root on another user's files");
        return None;
    }
    Some(base.join("cacbridge").join("cards.json"))
}

impl Entry {
    fn from_record(record: &CardRecord, pcscd: &str) -> Self {
        Entry {
            pcscd: pcscd.to_owned(),
            reader: record.reader.clone(),
            event_count: record.event_count,
            atr: hex::encode(&record.atr),
            card_type: match record.card_type {
                CardType::Piv => "piv",
                CardType::Cac => "cac",
                CardType::Unknown => "unknown",
            }
            .into(),
            dual_cac: record.dual_cac,
            read: record
                .read
                .iter()
                .map(|p| purpose_name(*p).into())
                .collect(),
            certificates: record
                .certificates
                .iter()
                .map(|(slot, der)| StoredCertificate {
                    slot: slot_name(*slot),
                    sha256: hex::encode(Sha256::digest(der)),
                    der: hex::encode(der),
                })
                .collect(),
            stored_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// The record, or `None` when anything in it does not parse or check.
    fn record(&self) -> Option<CardRecord> {
        let certificates = self
            .certificates
            .iter()
            .map(|stored| {
                let der = hex::decode(&stored.der).ok()?;
                (hex::encode(Sha256::digest(&der)) == stored.sha256)
                    .then_some((slot_from_name(&stored.slot)?, der))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(CardRecord {
            reader: self.reader.clone(),
            event_count: self.event_count,
            atr: hex::decode(&self.atr).ok()?,
            card_type: match self.card_type.as_str() {
                "piv" => CardType::Piv,
                "cac" => CardType::Cac,
                _ => return None,
            },
            dual_cac: self.dual_cac,
            read: self
                .read
                .iter()
                .map(|p| purpose_from_name(p))
                .collect::<Option<_>>()?,
            certificates,
        })
    }
}

fn purpose_name(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Authentication => "authentication",
        Purpose::Signature => "signature",
        Purpose::All => "all",
    }
}

fn purpose_from_name(name: &str) -> Option<Purpose> {
    [Purpose::Authentication, Purpose::Signature, Purpose::All]
        .into_iter()
        .find(|p| purpose_name(*p) == name)
}

fn slot_name(slot: Slot) -> String {
    match slot {
        Slot::CacId => "CAC-ID".into(),
        Slot::CacEmailSignature => "CAC-EMAIL-SIGNATURE".into(),
        Slot::CacEmailEncryption => "CAC-EMAIL-ENCRYPTION".into(),
        piv => format!("{:02X}", piv.piv_key_reference().unwrap_or(0)),
    }
}

fn slot_from_name(name: &str) -> Option<Slot> {
    match name {
        "CAC-ID" => return Some(Slot::CacId),
        "CAC-EMAIL-SIGNATURE" => return Some(Slot::CacEmailSignature),
        "CAC-EMAIL-ENCRYPTION" => return Some(Slot::CacEmailEncryption),
        _ => {}
    }
    let reference = u8::from_str_radix(name, 16).ok()?;
    Slot::PIV_CURRENT
        .into_iter()
        .chain((1..=20).map(Slot::RetiredKeyManagement))
        .find(|slot| slot.piv_key_reference() == Some(reference))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cache(dir: &Path) -> DiskCache {
        DiskCache::for_instance(dir.join("sub").join("cards.json"), "boot:1:100")
    }

    fn record(reader: &str, event_count: u32) -> CardRecord {
        CardRecord {
            reader: reader.into(),
            event_count,
            atr: vec![0x3B, 0x95],
            card_type: CardType::Piv,
            dual_cac: Some(true),
            read: vec![Purpose::Authentication],
            certificates: vec![
                (Slot::PivAuthentication, vec![0x30, 1, 2]),
                (Slot::RetiredKeyManagement(3), vec![0x30, 4]),
            ],
        }
    }

    #[test]
    fn a_record_comes_back_only_for_the_same_insertion_and_pcscd() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        cache.store(&record("R0", 4));
        assert_eq!(cache.load("R0", 4, &[0x3B, 0x95]), Some(record("R0", 4)));
        assert_eq!(cache.load("R1", 4, &[0x3B, 0x95]), None, "another reader");
        assert_eq!(cache.load("R0", 4, &[0x3B, 0x96]), None, "another ATR");
        // The mismatch deleted it: even the right insertion no longer finds it.
        assert_eq!(cache.load("R0", 4, &[0x3B, 0x95]), None);

        cache.store(&record("R0", 4));
        assert_eq!(
            cache.load("R0", 6, &[0x3B, 0x95]),
            None,
            "pulled and put back"
        );
        cache.store(&record("R0", 4));
        let restarted = DiskCache {
            pcscd: "boot:1:200".into(),
            ..cache
        };
        assert_eq!(
            restarted.load("R0", 4, &[0x3B, 0x95]),
            None,
            "pcscd restarted"
        );
    }

    #[test]
    fn the_file_is_private_bounded_and_a_damaged_one_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        for reader in 0..(MAX_ENTRIES + 3) {
            cache.store(&record(&format!("R{reader}"), 1));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let file: File = serde_json::from_slice(&std::fs::read(&cache.path).unwrap()).unwrap();
        assert_eq!(file.entries.len(), MAX_ENTRIES);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache.path), 0o600);
        assert_eq!(mode(cache.path.parent().unwrap()), 0o700);

        // A certificate whose bytes no longer match its hash: the record is refused.
        let text = std::fs::read_to_string(&cache.path).unwrap();
        let last = format!("R{}", MAX_ENTRIES + 2);
        std::fs::write(
            &cache.path,
            text.replace("\"der\":\"300102\"", "\"der\":\"300103\""),
        )
        .unwrap();
        assert_eq!(cache.load(&last, 1, &[0x3B, 0x95]), None);
        std::fs::write(&cache.path, b"{not json").unwrap();
        assert_eq!(cache.load(&last, 1, &[0x3B, 0x95]), None);
        cache.store(&record("R0", 1));
        assert!(
            cache.load("R0", 1, &[0x3B, 0x95]).is_some(),
            "rewritten afresh"
        );
    }

    #[test]
    fn slots_and_purposes_round_trip_by_name() {
        for slot in Slot::PIV_CURRENT
            .into_iter()
            .chain(Slot::CAC)
            .chain((1..=20).map(Slot::RetiredKeyManagement))
        {
            assert_eq!(slot_from_name(&slot_name(slot)), Some(slot));
        }
        for purpose in [Purpose::Authentication, Purpose::Signature, Purpose::All] {
            assert_eq!(purpose_from_name(purpose_name(purpose)), Some(purpose));
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_temporary_file_is_never_written_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("someone-elses");
        std::fs::write(&target, "kept").unwrap();
        let path = dir.path().join("cards.json");
        let temporary = dir
            .path()
            .join(format!(".cards.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &temporary).unwrap();
        write_private(&path, b"{}").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}");
        assert!(std::fs::symlink_metadata(&temporary).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn root_keeps_out_of_another_users_cache() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cacbridge/cards.json");
        assert!(!root_among_others(&cache), "one's own directory");
        if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            std::os::unix::fs::chown(dir.path(), Some(4242), Some(4242)).unwrap();
            assert!(root_among_others(&cache));
        }
    }
}
