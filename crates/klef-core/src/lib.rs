//! The pure core of Klef: cryptography, domain models, the `.klef` file, `.env` parsing and
//! rendering, and the [`Backend`](backend::Backend) trait that the local vault and the remote
//! server both implement.
//!
//! Nothing in this crate performs I/O beyond parsing bytes handed to it; it is the crate we fuzz
//! and property-test.
//!
//! ```
//! use klef_core::names::validate_key_name;
//! assert!(validate_key_name("DATABASE_URL").is_ok());
//! assert!(validate_key_name("1BAD").is_err());
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]

pub mod backend;
pub mod backup;
pub mod crypto;
pub mod dotenv;
pub mod env;
pub mod ids;
pub mod klef_file;
pub mod model;
pub mod names;
pub mod ready;
pub mod refs;
pub mod template;
pub mod trust;
pub mod wire;

pub use secrecy;
pub use zeroize;
