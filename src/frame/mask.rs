//! Payload masking (RFC 6455 section 5.3). STUB.

/// XORs `buf` with `key`, where `buf` starts `offset` bytes into the payload
/// (so a payload can be unmasked in pieces as it arrives). Applying it twice is identity.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let _ = (buf, key, offset);
    unimplemented!()
}
