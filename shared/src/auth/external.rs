//! Externally verified tokens (seed 004, Multica's cloud-node tokens). Being written.

use crate::auth::AuthState;
use crate::services::Services;
use crate::store::StoreError;

/// Verifies a bearer token that is not one of ours.
pub async fn verify(_services: &Services, _token: &str) -> Result<AuthState, StoreError> {
    Ok(AuthState::invalid(
        "invalid_token",
        "the credential is not recognised",
    ))
}
