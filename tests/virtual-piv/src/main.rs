//! `virtual-piv`: a virtual PIV card for tests. It connects to vsmartcard's vpcd (a pcscd
//! reader driver) and answers APDUs with Nitrokey's piv-authenticator, so everything above it
//! (pcscd, OpenSC, yubico-piv-tool, cacbridge-host) talks to a real PIV implementation.
//!
//! ```text
//! virtual-piv --port 35963 --state /tmp/card1      # reader "Virtual PCD 00 00"
//! virtual-piv --port 35964 --state /tmp/card2      # reader "Virtual PCD 00 01"
//! ```
//!
//! With `--state` the card's storage lives in files and survives a restart: killing the
//! process is pulling the card out, starting it again is putting it back. When pcscd goes away
//! the card keeps trying to reconnect, as a card left in a reader would.

mod card;
mod dispatch;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use clap::Parser;
use piv_authenticator::Options;
use rand_chacha::ChaCha8Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use trussed::virt::{StorageConfig, StoreConfig};

use card::{CardPlatform, VirtualCard};
use dispatch::CardDispatch;

#[derive(Parser)]
#[command(about = "A virtual PIV card (piv-authenticator) for vsmartcard's vpcd")]
struct Args {
    /// vpcd port: 35963 is reader "Virtual PCD 00 00", 35964 "Virtual PCD 00 01".
    #[arg(long, default_value_t = 35963)]
    port: u16,
    /// Directory for the card's storage; without it the card lives in memory only.
    #[arg(long)]
    state: Option<PathBuf>,
    /// 32-byte RNG seed in hex, for reproducible keys; random by default.
    #[arg(long)]
    seed: Option<String>,
    /// ATR in hex.
    #[arg(long, default_value = "3B9513810180 73FF01000B")]
    atr: String,
    /// Log every APDU and response to stderr.
    #[arg(long)]
    trace: bool,
    /// Wait this long before each answer (to pull the card out mid-operation in tests).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Append a line to this file for every VERIFY that carries a PIN, when it arrives.
    #[arg(long)]
    verify_log: Option<PathBuf>,
    /// Append a line (CLA INS P1 P2 in hex, and the object of a GET DATA; then the arrival
    /// time in Unix milliseconds) to this file for every APDU: tests count them.
    #[arg(long)]
    apdu_log: Option<PathBuf>,
    /// Wait this long before answering a VERIFY that carries a PIN (to interrupt it in tests).
    #[arg(long, default_value_t = 0)]
    verify_stall_ms: u64,
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let atr = hex::decode(args.atr.replace(' ', "")).expect("--atr is hex");
    let mut seed = [0u8; 32];
    match &args.seed {
        Some(hex_seed) => {
            seed.copy_from_slice(&hex::decode(hex_seed).expect("--seed is 32 bytes of hex"))
        }
        None => OsRng.fill_bytes(&mut seed),
    }

    let mut store = match &args.state {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            StoreConfig {
                internal: StorageConfig::filesystem(dir.join("internal.bin")),
                external: StorageConfig::filesystem(dir.join("external.bin")),
                volatile: StorageConfig::ram(),
            }
        }
        None => StoreConfig::ram(),
    };
    store.with_store(|store| {
        let platform = CardPlatform::new(ChaCha8Rng::from_seed(seed), store);
        // PIN-protected key material is bound to this "hardware" key: constant, so that a
        // card with file-backed state still works after a restart.
        let dispatch = CardDispatch::new(b"cacbridge virtual PIV card");
        let mut card = VirtualCard::new(platform, dispatch, Options::default());
        loop {
            match TcpStream::connect((Ipv4Addr::LOCALHOST, args.port)) {
                Ok(stream) => {
                    eprintln!("virtual-piv: inserted into vpcd port {}", args.port);
                    let ended = serve(stream, &mut card, &atr, &args);
                    eprintln!("virtual-piv: vpcd connection ended ({ended:?}); reconnecting");
                    card.power_cycle();
                }
                Err(_) => sleep(Duration::from_millis(100)),
            }
        }
    })
}

/// vpcd's protocol: each message is a 2-byte big-endian length and a payload. A 1-byte payload
/// is a control code (0 power off, 1 power on, 2 reset, 4 get ATR); anything longer is a
/// C-APDU, answered with the R-APDU.
fn serve(stream: TcpStream, card: &mut VirtualCard<'_>, atr: &[u8], args: &Args) -> io::Error {
    let socket = socket2::SockRef::from(&stream);
    let _ = stream.set_nodelay(true);
    let mut stream = &stream;
    loop {
        // vpcd writes the length and the body separately without TCP_NODELAY: without a quick
        // ACK every APDU waits ~40 ms for the delayed-ACK timer.
        let _ = socket.set_tcp_quickack(true);
        let mut header = [0u8; 2];
        if let Err(err) = stream.read_exact(&mut header) {
            return err;
        }
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(header))];
        let _ = socket.set_tcp_quickack(true);
        if let Err(err) = stream.read_exact(&mut message) {
            return err;
        }
        let reply = match message.as_slice() {
            [0] | [2] => {
                card.power_cycle();
                continue;
            }
            [1] => continue,
            [4] => atr.to_vec(),
            [code] => {
                eprintln!("virtual-piv: unknown vpcd control code {code}");
                continue;
            }
            apdu => {
                if let Some(log) = &args.apdu_log {
                    // The header; for a GET DATA the object asked for too (never a PIN).
                    let shown = if apdu.get(1) == Some(&0xCB) {
                        apdu.len()
                    } else {
                        4
                    };
                    let header = hex::encode(&apdu[..apdu.len().min(shown)]);
                    let _ = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(log)
                        .and_then(|mut file| writeln!(file, "{header} {}", unix_millis()));
                }
                let carries_pin = apdu.len() > 5 && apdu[1] == 0x20 && apdu[2] == 0x00;
                if carries_pin {
                    if let Some(log) = &args.verify_log {
                        let _ = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(log)
                            .and_then(|mut file| file.write_all(b"verify\n"));
                    }
                    sleep(Duration::from_millis(args.verify_stall_ms));
                }
                let response = card.transmit(apdu);
                if args.delay_ms > 0 {
                    sleep(Duration::from_millis(args.delay_ms));
                }
                if args.trace {
                    eprintln!("> {}\n< {}", hex::encode(apdu), hex::encode(&response));
                }
                response
            }
        };
        let mut frame = (reply.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&reply);
        if let Err(err) = stream.write_all(&frame) {
            return err;
        }
    }
}

/// When an APDU arrived, for tests that check two cards were read at the same time.
fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
