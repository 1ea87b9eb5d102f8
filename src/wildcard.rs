//! InspIRCd-style wildcard patterns (`*` and `?`, ASCII case-insensitive). STUB.
