//! Placeholder until the macro lands.
use proc_macro::TokenStream;

#[proc_macro_attribute]
pub fn cron_target(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
