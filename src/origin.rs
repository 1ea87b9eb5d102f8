//! `<wsorigin allow>` matching with InspIRCd::Match semantics. STUB.

#[derive(Clone, Debug)]
pub struct OriginAllowList {}

impl OriginAllowList {
    /// True when some pattern matches the whole Origin value.
    pub fn allows(&self, origin: &[u8]) -> bool {
        let _ = origin;
        unimplemented!()
    }
}
