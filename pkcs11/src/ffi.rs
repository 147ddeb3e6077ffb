//! The C ABI: the one place with `unsafe`. Every exported function checks its pointers, turns
//! them into safe values, calls [`Module`] under one lock, and catches panics so that none
//! crosses into the calling program.
#![allow(unsafe_code)]
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use cryptoki_sys::*;

use cacbridge_card::{PcscBackend, TimedBackend};

use crate::mechanisms;
use crate::module::{Finished, Module, Rv};
use crate::window::HostWindow;

static MODULE: Mutex<Option<Module>> = Mutex::new(None);

/// Put `module` in place of whatever is loaded: the fuzzer's token in memory behind the C
/// interface.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn install(module: Module) {
    *MODULE.lock().unwrap_or_else(|p| p.into_inner()) = Some(module);
}

/// The library file name browsers load (`cacbridge-host install` registers this name, a link
/// to the same library): the PIN goes to CAC Bridge's window instead of the browser's prompt.
/// Programs (pkcs11-tool, OpenSSL, ssh) load `libcacbridge_pkcs11.so` and log in as usual.
pub use cacbridge_channel::BROWSER_LIBRARY;

/// Whether this library was loaded under [`BROWSER_LIBRARY`]'s name.
fn loaded_for_a_browser() -> bool {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // The address of a function of ours that is not exported: an exported one
    // (C_GetFunctionList) may resolve to another library's of the same name (NSS's softoken
    // exports one too), and dladdr would then name that library.
    let ours = loaded_for_a_browser as *const libc::c_void;
    // SAFETY: dladdr fills `info` for an address inside a loaded object; `ours` is in this
    // library. dli_fname, when set, is a NUL-terminated string owned by the loader.
    let found = unsafe { libc::dladdr(ours, info.as_mut_ptr()) };
    if found == 0 {
        return false;
    }
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return false;
    }
    let path = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    path.to_bytes().ends_with(BROWSER_LIBRARY.as_bytes())
}

/// Run `f` on the initialized module; panics become `CKR_GENERAL_ERROR`.
fn with_module(f: impl FnOnce(&mut Module) -> Result<(), Rv>) -> CK_RV {
    catch_unwind(AssertUnwindSafe(|| {
        let mut guard = MODULE.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            None => CKR_CRYPTOKI_NOT_INITIALIZED,
            Some(module) => f(module).err().unwrap_or(CKR_OK),
        }
    }))
    .unwrap_or(CKR_GENERAL_ERROR)
}

/// Finish a signature the module prepared under its lock: the card's signature as it is, or
/// the window's, asked for after the lock is released (the person may take a minute).
unsafe fn finish_signature(
    finished: Finished,
    signature: *mut CK_BYTE,
    signature_length: *mut CK_ULONG,
) -> CK_RV {
    let reader = finished.window_reader().map(str::to_owned);
    let made =
        catch_unwind(AssertUnwindSafe(|| finished.complete())).unwrap_or(Err(CKR_GENERAL_ERROR));
    if let (Err(CKR_DEVICE_REMOVED), Some(reader)) = (&made, reader) {
        with_module(|module| {
            module.forget_card(&reader);
            Ok(())
        });
    }
    match made.and_then(|made| write_signature(&made, signature, signature_length)) {
        Ok(()) => CKR_OK,
        Err(rv) => rv,
    }
}

/// A blank-padded fixed-width PKCS#11 string.
fn padded<const N: usize>(text: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let mut end = text.len().min(N);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&text.as_bytes()[..end]);
    out
}

fn version() -> CK_VERSION {
    let mut parts = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse().unwrap_or(0));
    CK_VERSION {
        major: parts.next().unwrap_or(0),
        minor: parts.next().unwrap_or(0),
    }
}

/// The two-call convention: `out` null asks for the count; else it must hold `items`.
unsafe fn write_list<T: Copy>(items: &[T], out: *mut T, count: *mut CK_ULONG) -> Result<(), Rv> {
    if count.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let capacity = *count;
    *count = items.len() as CK_ULONG;
    if out.is_null() {
        return Ok(());
    }
    if (capacity as usize) < items.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), out, items.len());
    Ok(())
}

/// A template from the caller, copied out of its memory.
unsafe fn template(
    attributes: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>, Rv> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if attributes.is_null() || count > 1024 {
        return Err(CKR_ARGUMENTS_BAD);
    }
    std::slice::from_raw_parts(attributes, count as usize)
        .iter()
        .map(|a| {
            if a.ulValueLen == 0 {
                return Ok((a.type_, Vec::new()));
            }
            if a.pValue.is_null() || a.ulValueLen > 64 * 1024 {
                return Err(CKR_ATTRIBUTE_VALUE_INVALID);
            }
            let value = std::slice::from_raw_parts(a.pValue as *const u8, a.ulValueLen as usize);
            Ok((a.type_, value.to_vec()))
        })
        .collect()
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    *list = std::ptr::addr_of!(FUNCTIONS) as *mut CK_FUNCTION_LIST;
    CKR_OK
}

unsafe extern "C" fn C_Initialize(args: *mut std::os::raw::c_void) -> CK_RV {
    if !args.is_null() {
        let args = std::ptr::read_unaligned(args as *const CK_C_INITIALIZE_ARGS);
        if !args.pReserved.is_null() {
            return CKR_ARGUMENTS_BAD;
        }
        // The module locks with the operating system's primitives; a caller that insists on
        // its own mutex callbacks (without allowing OS locking) cannot be served.
        let callbacks = args.CreateMutex.is_some()
            || args.DestroyMutex.is_some()
            || args.LockMutex.is_some()
            || args.UnlockMutex.is_some();
        if callbacks && args.flags & CKF_OS_LOCKING_OK == 0 {
            return CKR_CANT_LOCK;
        }
    }
    catch_unwind(|| {
        let mut guard = MODULE.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() {
            return CKR_CRYPTOKI_ALREADY_INITIALIZED;
        }
        let card = TimedBackend::new(
            Box::new(PcscBackend::with_disk_cache()),
            cacbridge_card::timed::timeout_from_env(),
        );
        let module = match loaded_for_a_browser()
            .then(HostWindow::for_this_browser)
            .flatten()
        {
            Some(window) => Module::for_browser(Box::new(card), Arc::new(window)),
            None => Module::new(Box::new(card)),
        };
        *guard = Some(module);
        CKR_OK
    })
    .unwrap_or(CKR_GENERAL_ERROR)
}

unsafe extern "C" fn C_Finalize(reserved: *mut std::os::raw::c_void) -> CK_RV {
    if !reserved.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    catch_unwind(|| {
        let mut guard = MODULE.lock().unwrap_or_else(|p| p.into_inner());
        match guard.take() {
            Some(_) => CKR_OK,
            None => CKR_CRYPTOKI_NOT_INITIALIZED,
        }
    })
    .unwrap_or(CKR_GENERAL_ERROR)
}

unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    if info.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|_| {
        *info = CK_INFO {
            cryptokiVersion: CK_VERSION {
                major: 2,
                minor: 40,
            },
            manufacturerID: padded("CAC Bridge"),
            flags: 0,
            libraryDescription: padded("CAC Bridge PIV and CAC module"),
            libraryVersion: version(),
        };
        Ok(())
    })
}

unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    slots: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module(|module| {
        let list = module.slot_list(token_present != CK_FALSE)?;
        write_list(&list, slots, count)
    })
}

unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    if info.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        let slot_info = module.slot_info(slot)?;
        let present = if slot_info.token_present {
            CKF_TOKEN_PRESENT
        } else {
            0
        };
        *info = CK_SLOT_INFO {
            slotDescription: padded(&slot_info.description),
            manufacturerID: padded("CAC Bridge"),
            flags: present | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION { major: 0, minor: 0 },
        };
        Ok(())
    })
}

unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    if info.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        let token = module.token_info(slot)?;
        let login_required = module.login_required();
        *info = CK_TOKEN_INFO {
            label: padded(&token.label),
            manufacturerID: padded("CAC Bridge"),
            model: padded(&token.model),
            serialNumber: padded(&token.serial),
            flags: CKF_TOKEN_INITIALIZED
                | CKF_USER_PIN_INITIALIZED
                | if login_required {
                    CKF_LOGIN_REQUIRED
                } else {
                    0
                }
                // Nothing on the card is written through the module; NSS then never tries.
                // Read/write sessions are still granted (C_OpenSession) to the programs
                // that ask for one anyway.
                | CKF_WRITE_PROTECTED
                | token.pin_flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: CK_UNAVAILABLE_INFORMATION,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: CK_UNAVAILABLE_INFORMATION,
            ulMaxPinLen: 8,
            ulMinPinLen: 6,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 0, minor: 0 },
            firmwareVersion: CK_VERSION { major: 0, minor: 0 },
            utcTime: [b' '; 16],
        };
        Ok(())
    })
}

unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    with_module(|module| {
        module.slot_info(slot)?;
        write_list(&mechanisms::all(), list, count)
    })
}

unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    if info.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        module.slot_info(slot)?;
        *info = mechanisms::info(kind).ok_or(CKR_MECHANISM_INVALID)?;
        Ok(())
    })
}

unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    length: CK_ULONG,
) -> CK_RV {
    if pin.is_null() || length > 64 {
        // No protected authentication path (PIN pad) is offered: the PIN must come.
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        // Copied into a buffer wiped on drop; the caller's memory is the caller's.
        let digits = zeroize::Zeroizing::new(
            std::slice::from_raw_parts(pin as *const u8, length as usize).to_vec(),
        );
        module.login(session, user, &digits)
    })
}

unsafe extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|module| module.logout(session))
}

unsafe extern "C" fn C_SignInit(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    if mechanism.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let kind = (*mechanism).mechanism;
    let parameter = (*mechanism).pParameter;
    let pss = if mechanisms::is_pss(kind)
        && !parameter.is_null()
        && (*mechanism).ulParameterLen as usize == std::mem::size_of::<CK_RSA_PKCS_PSS_PARAMS>()
    {
        let params = std::ptr::read_unaligned(parameter as *const CK_RSA_PKCS_PSS_PARAMS);
        match mechanisms::PssParams::from_raw(params.hashAlg, params.mgf, params.sLen) {
            Some(params) => Some(params),
            None => return CKR_MECHANISM_PARAM_INVALID,
        }
    } else {
        None
    };
    with_module(|module| module.sign_init(session, kind, pss, key))
}

/// Write a finished signature with the size-query convention; `None` asks for the length.
unsafe fn write_signature(
    signature: &[u8],
    out: *mut CK_BYTE,
    length: *mut CK_ULONG,
) -> Result<(), Rv> {
    let capacity = *length as usize;
    *length = signature.len() as CK_ULONG;
    if capacity < signature.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    std::ptr::copy_nonoverlapping(signature.as_ptr(), out, signature.len());
    Ok(())
}

unsafe extern "C" fn C_Sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_length: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_length: *mut CK_ULONG,
) -> CK_RV {
    if signature_length.is_null() || (data.is_null() && data_length > 0) {
        return CKR_ARGUMENTS_BAD;
    }
    let mut finished = None;
    let rv = with_module(|module| {
        if signature.is_null() {
            *signature_length = module.signature_len(session)? as CK_ULONG;
            return Ok(());
        }
        if (*signature_length as usize) < module.signature_len(session)? {
            *signature_length = module.signature_len(session)? as CK_ULONG;
            return Err(CKR_BUFFER_TOO_SMALL);
        }
        if data_length > 0 {
            module.sign_update(
                session,
                std::slice::from_raw_parts(data, data_length as usize),
            )?;
        }
        finished = Some(module.sign_final(session)?);
        Ok(())
    });
    match finished {
        Some(finished) if rv == CKR_OK => finish_signature(finished, signature, signature_length),
        _ => rv,
    }
}

unsafe extern "C" fn C_SignUpdate(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_length: CK_ULONG,
) -> CK_RV {
    if data.is_null() && data_length > 0 {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        if data_length == 0 {
            return Ok(());
        }
        module.sign_update(
            session,
            std::slice::from_raw_parts(data, data_length as usize),
        )
    })
}

unsafe extern "C" fn C_SignFinal(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_length: *mut CK_ULONG,
) -> CK_RV {
    if signature_length.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let mut finished = None;
    let rv = with_module(|module| {
        let needed = module.signature_len(session)?;
        if signature.is_null() {
            *signature_length = needed as CK_ULONG;
            return Ok(());
        }
        if (*signature_length as usize) < needed {
            *signature_length = needed as CK_ULONG;
            return Err(CKR_BUFFER_TOO_SMALL);
        }
        finished = Some(module.sign_final(session)?);
        Ok(())
    });
    match finished {
        Some(finished) if rv == CKR_OK => finish_signature(finished, signature, signature_length),
        _ => rv,
    }
}

unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut std::os::raw::c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    if session.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    if flags & CKF_SERIAL_SESSION == 0 {
        return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    }
    with_module(|module| {
        *session = module.open_session(slot, flags & CKF_RW_SESSION != 0)?;
        Ok(())
    })
}

unsafe extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|module| module.close_session(session))
}

unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    with_module(|module| module.close_all_sessions(slot))
}

unsafe extern "C" fn C_GetSessionInfo(
    session: CK_SESSION_HANDLE,
    info: *mut CK_SESSION_INFO,
) -> CK_RV {
    if info.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        let slot = module.session_slot(session)?;
        let read_write = module.session_read_write(session)?;
        *info = CK_SESSION_INFO {
            slotID: slot,
            state: match (read_write, module.is_logged_in(slot)) {
                (false, false) => CKS_RO_PUBLIC_SESSION,
                (false, true) => CKS_RO_USER_FUNCTIONS,
                (true, false) => CKS_RW_PUBLIC_SESSION,
                (true, true) => CKS_RW_USER_FUNCTIONS,
            },
            flags: CKF_SERIAL_SESSION | if read_write { CKF_RW_SESSION } else { 0 },
            ulDeviceError: 0,
        };
        Ok(())
    })
}

unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    with_module(|module| {
        let template = template(attributes, count)?;
        module.find_init(session, &template)
    })
}

unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    if count.is_null() || (objects.is_null() && max > 0) {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        let found = module.find(session, max as usize)?;
        // Even an empty copy needs a valid pointer: copy only what there is.
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len());
        }
        *count = found.len() as CK_ULONG;
        Ok(())
    })
}

unsafe extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|module| module.find_final(session))
}

unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    handle: CK_OBJECT_HANDLE,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    if attributes.is_null() && count > 0 {
        return CKR_ARGUMENTS_BAD;
    }
    with_module(|module| {
        let object = module.object(session, handle)?;
        let mut result = Ok(());
        let attributes = if count == 0 {
            &mut []
        } else {
            std::slice::from_raw_parts_mut(attributes, count as usize)
        };
        for attribute in attributes {
            let Some(value) = object.attribute(attribute.type_) else {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                result = Err(CKR_ATTRIBUTE_TYPE_INVALID);
                continue;
            };
            if attribute.pValue.is_null() {
                attribute.ulValueLen = value.len() as CK_ULONG;
            } else if (attribute.ulValueLen as usize) < value.len() {
                attribute.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                result = Err(CKR_BUFFER_TOO_SMALL);
            } else {
                std::ptr::copy_nonoverlapping(
                    value.as_ptr(),
                    attribute.pValue as *mut u8,
                    value.len(),
                );
                attribute.ulValueLen = value.len() as CK_ULONG;
            }
        }
        result
    })
}

/// A card inserted or removed, or a reader added or removed: its slot. With
/// `CKF_DONT_BLOCK`, `CKR_NO_EVENT` when nothing happened; else waits (without holding the
/// module's lock) until something does or the module is finalized.
unsafe extern "C" fn C_WaitForSlotEvent(
    flags: CK_FLAGS,
    slot: *mut CK_SLOT_ID,
    reserved: *mut std::os::raw::c_void,
) -> CK_RV {
    if slot.is_null() || !reserved.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let mut events = None;
    let started = with_module(|module| {
        events = Some(module.slot_events());
        Ok(())
    });
    let Some(events) = events.filter(|_| started == CKR_OK) else {
        return started;
    };
    loop {
        let wait = if flags & CKF_DONT_BLOCK != 0 {
            std::time::Duration::from_millis(0)
        } else {
            std::time::Duration::from_millis(500)
        };
        let next = catch_unwind(AssertUnwindSafe(|| events.next(wait))).unwrap_or(None);
        match next {
            Some(reader) => {
                return with_module(|module| {
                    *slot = module.slot_of(&reader);
                    Ok(())
                })
            }
            None if flags & CKF_DONT_BLOCK != 0 => return CKR_NO_EVENT,
            None => {
                // Finalized meanwhile: the waiting thread is released.
                let alive = with_module(|_| Ok(()));
                if alive != CKR_OK {
                    return alive;
                }
            }
        }
    }
}

/// Functions this module does not offer (yet): `CKR_FUNCTION_NOT_SUPPORTED`, never a NULL
/// pointer a caller might jump through.
macro_rules! unsupported {
    ($($name:ident($($arg:ty),*);)*) => {
        $(
            unsafe extern "C" fn $name($(_: $arg),*) -> CK_RV {
                CKR_FUNCTION_NOT_SUPPORTED
            }
        )*
    };
}

unsupported! {
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR);
    C_InitPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG);
    C_SetPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR, CK_ULONG);
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    C_CreateObject(CK_SESSION_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_DestroyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ULONG);
    C_SetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG);
    C_EncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Encrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Decrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestInit(CK_SESSION_HANDLE, *mut CK_MECHANISM);
    C_Digest(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_DigestFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Verify(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_VerifyFinal(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_GenerateKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_GenerateKeyPair(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE, *mut CK_OBJECT_HANDLE);
    C_WrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_UnwrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_DeriveKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
}

/// The card's random numbers are not offered (a PIV card has no command for them, and the
/// token does not claim `CKF_RNG`): after the session and the arguments are checked, as the
/// standard orders the errors, `CKR_RANDOM_NO_RNG`.
unsafe fn no_random(session: CK_SESSION_HANDLE, data: *mut CK_BYTE, length: CK_ULONG) -> CK_RV {
    with_module(|module| {
        module.session_slot(session)?;
        if data.is_null() && length > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        Err(CKR_RANDOM_NO_RNG)
    })
}

unsafe extern "C" fn C_SeedRandom(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    length: CK_ULONG,
) -> CK_RV {
    no_random(session, seed, length)
}

unsafe extern "C" fn C_GenerateRandom(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    length: CK_ULONG,
) -> CK_RV {
    no_random(session, data, length)
}

/// The legacy parallel-function calls: PKCS#11 2.40 has every module answer these with
/// `CKR_FUNCTION_NOT_PARALLEL` (and not `CKR_FUNCTION_NOT_SUPPORTED`).
unsafe extern "C" fn C_GetFunctionStatus(session: CK_SESSION_HANDLE) -> CK_RV {
    with_module(|module| {
        module.session_slot(session)?;
        Err(CKR_FUNCTION_NOT_PARALLEL)
    })
}

unsafe extern "C" fn C_CancelFunction(session: CK_SESSION_HANDLE) -> CK_RV {
    C_GetFunctionStatus(session)
}

static FUNCTIONS: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};
