//! The media library: Payload's upload contract on the `media` collection. Files stream from the
//! multipart body to a staging file, are sniffed and checked, then stored on local disk or S3
//! under tenant-prefixed keys; the document row goes through the collection engine.

pub mod images;
pub mod routes;
pub mod storage;
pub mod upload;

use crate::collections::decl::CollectionDecl;

/// Whether a collection takes uploads (its create/update accept `multipart/form-data`).
pub fn is_upload(decl: &CollectionDecl) -> bool {
    decl.slug == "media"
}
