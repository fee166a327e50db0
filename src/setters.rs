//! `with_*` setters for the public fields of `#[non_exhaustive]` configuration
//! structs, which callers outside the crate cannot build with a struct literal.

/// `with_setters!(Type { with_name: field: FieldType, ... })` writes, for each
/// entry, `#[must_use] pub fn with_name(self, field: FieldType) -> Self` that
/// sets `field` (documented as setting it).
macro_rules! with_setters {
    ($ty:ty { $($name:ident : $field:ident : $fty:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("With `", stringify!($field), "` set.")]
                #[must_use]
                pub fn $name(mut self, $field: $fty) -> Self {
                    self.$field = $field;
                    self
                }
            )*
        }
    };
}
