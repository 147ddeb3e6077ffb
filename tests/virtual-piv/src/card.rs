//! One virtual PIV card: piv-authenticator over a trussed service that runs synchronously on
//! the caller's thread, plus the ISO 7816 plumbing a contact card does in firmware (command
//! chaining, GET RESPONSE).

use std::cell::RefCell;
use std::rc::Rc;

use iso7816::{Command, Instruction, Status};
use piv_authenticator::{Authenticator, Options};
use rand_chacha::ChaCha8Rng;
use trussed::pipe::{ServiceEndpoint, TrussedChannel};
use trussed::platform::Syscall;
use trussed::types::CoreContext;
use trussed::virt::{Store, UserInterface};
use trussed::{ClientImplementation, Service};

use crate::dispatch::{BackendKind, CardContext, CardDispatch, BACKENDS};

/// Largest command after chaining (a certificate object written with PUT DATA).
const MAX_COMMAND: usize = 8192;
/// Largest response (a certificate object read with GET DATA).
const MAX_RESPONSE: usize = 8192;
const CLIENT_ID: &str = "piv";
const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

/// trussed platform: the virt store and UI, and an RNG we seed ourselves (trussed::virt's own
/// platform seeds it with a constant, which would give every card the same keys).
pub struct CardPlatform<'s> {
    rng: ChaCha8Rng,
    store: Store<'s>,
    ui: UserInterface,
}

impl<'s> CardPlatform<'s> {
    pub fn new(rng: ChaCha8Rng, store: Store<'s>) -> Self {
        Self {
            rng,
            store,
            ui: UserInterface::new(),
        }
    }
}

impl<'s> trussed::Platform for CardPlatform<'s> {
    type R = ChaCha8Rng;
    type S = Store<'s>;
    type UI = UserInterface;

    fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
    fn store(&self) -> Store<'s> {
        self.store
    }
    fn user_interface(&mut self) -> &mut UserInterface {
        &mut self.ui
    }
}

struct Engine<'s> {
    service: Service<CardPlatform<'s>, CardDispatch>,
    endpoints: Vec<ServiceEndpoint<'static, BackendKind, CardContext>>,
}

/// A syscall that runs the service right away: trussed::virt's runner polls a thread every
/// millisecond instead, which makes each APDU about ten times slower.
#[derive(Clone)]
pub struct DirectSyscall<'s>(Rc<RefCell<Engine<'s>>>);

impl Syscall for DirectSyscall<'_> {
    fn syscall(&mut self) {
        let mut engine = self.0.borrow_mut();
        let Engine { service, endpoints } = &mut *engine;
        service.process(endpoints);
    }
}

type Client<'s> = ClientImplementation<'static, DirectSyscall<'s>, CardDispatch>;

pub struct VirtualCard<'s> {
    engine: Rc<RefCell<Engine<'s>>>,
    options: Options,
    app: Authenticator<Client<'s>>,
    /// A chained command being collected (CLA bit 0x10 on all fragments but the last).
    chained: Option<Command<MAX_COMMAND>>,
    /// The response of the last command and how much of it was already sent.
    response: Vec<u8>,
    sent: usize,
}

impl<'s> VirtualCard<'s> {
    pub fn new(platform: CardPlatform<'s>, dispatch: CardDispatch, options: Options) -> Self {
        let engine = Rc::new(RefCell::new(Engine {
            service: Service::with_dispatch(platform, dispatch),
            endpoints: Vec::new(),
        }));
        let app = Self::fresh_app(&engine, options.clone());
        Self {
            engine,
            options,
            app,
            chained: None,
            response: Vec::new(),
            sent: 0,
        }
    }

    /// A new applet instance over the same storage: everything persistent survives, the
    /// security status (PIN verified, management key authenticated) does not. This is what a
    /// real card does on reset; piv-authenticator's own `deselect` keeps the PIN verified.
    fn fresh_app(engine: &Rc<RefCell<Engine<'s>>>, options: Options) -> Authenticator<Client<'s>> {
        // A channel lives as long as its client; one small leak per power cycle of a test card.
        let channel: &'static TrussedChannel = Box::leak(Box::new(TrussedChannel::new()));
        let (requester, responder) = channel.split().expect("a new channel splits");
        let context = CoreContext::new(CLIENT_ID.try_into().expect("valid client id"));
        engine.borrow_mut().endpoints = vec![ServiceEndpoint::new(responder, context, BACKENDS)];
        let client = ClientImplementation::new(requester, DirectSyscall(engine.clone()), None);
        Authenticator::new(client, options)
    }

    pub fn power_cycle(&mut self) {
        self.app = Self::fresh_app(&self.engine, self.options.clone());
        self.chained = None;
        self.response.clear();
        self.sent = 0;
    }

    /// One C-APDU in, one R-APDU out.
    pub fn transmit(&mut self, apdu: &[u8]) -> Vec<u8> {
        let command = match Command::<MAX_COMMAND>::try_from(apdu) {
            Ok(command) => command,
            Err(_) => return status_only(Status::WrongLength),
        };
        if command.instruction() == Instruction::GetResponse {
            return self.next_chunk(command.expected());
        }
        let command = if command.class().chain().not_the_last() {
            match self.chained.as_mut() {
                None => self.chained = Some(command),
                Some(head) => {
                    if head.extend_from_command(&command).is_err() {
                        self.chained = None;
                        return status_only(Status::WrongLength);
                    }
                }
            }
            return status_only(Status::Success);
        } else if let Some(mut head) = self.chained.take() {
            if head.extend_from_command(&command).is_err() {
                return status_only(Status::WrongLength);
            }
            head
        } else {
            command
        };
        let command = rewrite_short_piv_select(command);

        self.response.clear();
        self.sent = 0;
        let mut buffer = heapless::Vec::<u8, MAX_RESPONSE>::new();
        match self.app.respond(command.as_view(), buffer.as_mut_view()) {
            Ok(()) => {
                self.response.extend_from_slice(&buffer);
                self.next_chunk(command.expected())
            }
            Err(status) => status_only(status),
        }
    }

    /// Up to `le` bytes of the pending response, then 9000 or 61xx.
    fn next_chunk(&mut self, le: usize) -> Vec<u8> {
        // No Le on a short APDU: answer with what fits (256), the rest through 61xx.
        let le = if le == 0 { 256 } else { le };
        let rest = &self.response[self.sent..];
        let n = rest.len().min(le);
        let mut out = rest[..n].to_vec();
        self.sent += n;
        let remaining = self.response.len() - self.sent;
        if remaining == 0 {
            out.extend_from_slice(&[0x90, 0x00]);
        } else {
            // 61 00 means "256 or more".
            out.extend_from_slice(&[0x61, u8::try_from(remaining).unwrap_or(0)]);
        }
        out
    }
}

/// yubico-piv-tool, ykcs11 and others select with the 5-byte RID+PIX prefix, which
/// piv-authenticator refuses (6A82); real cards accept it.
fn rewrite_short_piv_select(command: Command<MAX_COMMAND>) -> Command<MAX_COMMAND> {
    let view = command.as_view();
    if view.instruction() == Instruction::Select
        && view.p1 == 0x04
        && view.data().len() < PIV_AID.len()
        && !view.data().is_empty()
        && PIV_AID.starts_with(view.data())
    {
        let mut apdu = vec![0x00, 0xA4, 0x04, view.p2, PIV_AID.len() as u8];
        apdu.extend_from_slice(&PIV_AID);
        apdu.push(0x00);
        return Command::try_from(&apdu).unwrap_or(command);
    }
    command
}

fn status_only(status: Status) -> Vec<u8> {
    let sw: [u8; 2] = status.into();
    sw.to_vec()
}
