//! Putting back a blob the cache registry serves with other bytes than its
//! digest. The machine that found it builds the layer itself; since the
//! registry still says it has the blob, an ordinary push would skip it and
//! every other machine would go on refusing it. So, when the cache is
//! writable, the blob is deleted from the cache repository, uploaded from
//! the local build, and read back to see that the registry now serves it.
//!
//! A registry that cannot delete blobs (Distribution without
//! `storage.delete.enabled` answers 405, ECR has no blob deletion) is warned
//! about once. One that deletes the repository's link but keeps the stored
//! bytes of a digest and links the upload to them again (Distribution's
//! filesystem storage does: an upload of a digest it already stores is not
//! written) still serves the damaged bytes: the read-back says so, once,
//! and what the registry's operator has to remove.

use super::CacheRegistry;
use crate::cache::Cache;
use crate::image::{Descriptor, Digest, OCI_LAYER_GZIP};
use crate::registry::{BlobBytes, RegistryError};
use crate::report::Reporter;

impl CacheRegistry {
    /// Replaces the damaged blob `digest` (`size` bytes) in the cache
    /// repository with the one this machine made (in `cache`). `Err` only
    /// for faults of the registry itself; a registry that refuses the
    /// repair is warned about.
    pub(super) fn replace_damaged_blob(
        &self,
        cache: &Cache,
        digest: &Digest,
        size: u64,
        reporter: &dyn Reporter,
    ) -> Result<(), RegistryError> {
        let repo = &self.repository;
        match self.client.delete_blob(repo, digest) {
            Ok(_) => {}
            Err(
                e @ (RegistryError::Status { .. }
                | RegistryError::Unauthorized { .. }
                | RegistryError::ForeignAuth { .. }),
            ) => {
                self.warn_once(
                    reporter,
                    format!(
                        "cache registry {}: blob {digest} serves other bytes than its digest, and deleting it was refused ({e}); other machines will refuse it too and build that layer themselves until it is removed (Distribution deletes blobs only with storage.delete.enabled; a registry without blob deletion needs it removed from its storage)",
                        self.name()
                    ),
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let path = cache.blob_path(digest);
        self.client
            .push_blob(repo, digest, BlobBytes::File(&path), None)?;
        // Read back as every pull is read: verified by digest and size. The
        // bytes are this machine's, so the cached copy stays what it was.
        let desc = Descriptor::new(OCI_LAYER_GZIP, digest.clone(), size);
        match self
            .client
            .download_blob(repo, &desc, cache, &crate::report::Silent)
        {
            Ok(_) => reporter.detail(&format!(
                "cache registry {}: replaced damaged blob {digest}",
                self.name()
            )),
            Err(e @ (RegistryError::DigestMismatch { .. } | RegistryError::TooLarge { .. })) => {
                let hex = digest.hex();
                self.warn_once(
                    reporter,
                    format!(
                        "cache registry {}: blob {digest} was deleted and uploaded again, but the bytes read back were refused again ({e}): the registry keeps the damaged copy in its storage (Distribution does not rewrite the stored data of a digest it already has); remove it there (Distribution: docker/registry/v2/blobs/sha256/{}/{hex}) and the next machine that builds the layer uploads it",
                        self.name(),
                        &hex[..2]
                    ),
                );
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }
}
