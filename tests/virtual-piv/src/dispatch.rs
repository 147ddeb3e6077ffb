//! The trussed backends piv-authenticator needs: the auth backend (PIN and PUK), the staging
//! backend (chunked writes of large certificates, HPKE, key wrapping), software RSA, and the
//! core backend for everything else.

use trussed::backend::{Backend as _, BackendId};
use trussed::platform::Platform;
use trussed::serde_extensions::{ExtensionDispatch, ExtensionId, ExtensionImpl};
use trussed::service::ServiceResources;
use trussed::types::Context;
use trussed_auth::AuthExtension;
use trussed_auth_backend::{AuthBackend, AuthContext, FilesystemLayout};
use trussed_chunked::ChunkedExtension;
use trussed_core::api::{reply, request, Reply, Request};
use trussed_core::types::{Bytes, Location};
use trussed_core::Error;
use trussed_hpke::HpkeExtension;
use trussed_rsa_alloc::SoftwareRsa;
use trussed_staging::{StagingBackend, StagingContext};
use trussed_wrap_key_to_file::WrapKeyToFileExtension;

/// Order matters: a request goes to the first backend that implements it.
pub const BACKENDS: &[BackendId<BackendKind>] = &[
    BackendId::Custom(BackendKind::Staging),
    BackendId::Custom(BackendKind::Auth),
    BackendId::Custom(BackendKind::Rsa),
    BackendId::Core,
];

#[derive(Debug, Clone, Copy)]
pub enum BackendKind {
    Auth,
    Rsa,
    Staging,
}

#[derive(Debug, Clone, Copy)]
pub enum ExtensionKind {
    Auth = 0,
    Chunked = 1,
    Hpke = 2,
    WrapKeyToFile = 3,
}

impl From<ExtensionKind> for u8 {
    fn from(kind: ExtensionKind) -> u8 {
        kind as u8
    }
}

impl TryFrom<u8> for ExtensionKind {
    type Error = Error;
    fn try_from(id: u8) -> Result<Self, Error> {
        Ok(match id {
            0 => ExtensionKind::Auth,
            1 => ExtensionKind::Chunked,
            2 => ExtensionKind::Hpke,
            3 => ExtensionKind::WrapKeyToFile,
            _ => return Err(Error::InternalError),
        })
    }
}

pub struct CardDispatch {
    auth: AuthBackend,
    staging: StagingBackend,
}

impl CardDispatch {
    pub fn new(hardware_key: &[u8]) -> Self {
        let mut key = Bytes::new();
        key.extend_from_slice(hardware_key)
            .expect("hardware key fits");
        Self {
            auth: AuthBackend::with_hw_key(Location::Internal, key, FilesystemLayout::V0),
            staging: StagingBackend::new(),
        }
    }
}

#[derive(Default)]
pub struct CardContext {
    auth: AuthContext,
    staging: StagingContext,
}

impl ExtensionDispatch for CardDispatch {
    type BackendId = BackendKind;
    type Context = CardContext;
    type ExtensionId = ExtensionKind;

    fn core_request<P: Platform>(
        &mut self,
        backend: &BackendKind,
        ctx: &mut Context<CardContext>,
        request: &Request,
        resources: &mut ServiceResources<P>,
    ) -> Result<Reply, Error> {
        match backend {
            BackendKind::Auth => {
                self.auth
                    .request(&mut ctx.core, &mut ctx.backends.auth, request, resources)
            }
            BackendKind::Staging => {
                self.staging
                    .request(&mut ctx.core, &mut ctx.backends.staging, request, resources)
            }
            BackendKind::Rsa => SoftwareRsa.request(&mut ctx.core, &mut (), request, resources),
        }
    }

    fn extension_request<P: Platform>(
        &mut self,
        backend: &BackendKind,
        extension: &ExtensionKind,
        ctx: &mut Context<CardContext>,
        request: &request::SerdeExtension,
        resources: &mut ServiceResources<P>,
    ) -> Result<reply::SerdeExtension, Error> {
        let core = &mut ctx.core;
        match (backend, extension) {
            (BackendKind::Auth, ExtensionKind::Auth) => self.auth.extension_request_serialized(
                core,
                &mut ctx.backends.auth,
                request,
                resources,
            ),
            (BackendKind::Staging, ExtensionKind::Chunked) => {
                ExtensionImpl::<ChunkedExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (BackendKind::Staging, ExtensionKind::Hpke) => {
                ExtensionImpl::<HpkeExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            (BackendKind::Staging, ExtensionKind::WrapKeyToFile) => {
                ExtensionImpl::<WrapKeyToFileExtension>::extension_request_serialized(
                    &mut self.staging,
                    core,
                    &mut ctx.backends.staging,
                    request,
                    resources,
                )
            }
            _ => Err(Error::RequestNotAvailable),
        }
    }
}

impl ExtensionId<AuthExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::Auth;
}
impl ExtensionId<ChunkedExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::Chunked;
}
impl ExtensionId<HpkeExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::Hpke;
}
impl ExtensionId<WrapKeyToFileExtension> for CardDispatch {
    type Id = ExtensionKind;
    const ID: ExtensionKind = ExtensionKind::WrapKeyToFile;
}
