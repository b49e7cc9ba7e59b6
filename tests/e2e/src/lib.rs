//! See tests/.
pub mod github_fixture;
