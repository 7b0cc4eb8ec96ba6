// `sqlx::migrate!` embeds `migrations/` at compile time, but Cargo does not notice a new file
// in that directory: without this, a new migration is left out until something else changes.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
