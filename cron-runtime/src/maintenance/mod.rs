//! Background services that keep the cluster's records whole, run by every `api` and
//! `scheduler` process alike (one pass at a time across the cluster).
//!
//! - [`watchdog`]: records every slot nobody recorded as `missed`, ends run-now requests no
//!   live scheduler can start, and watches for no scheduler at all.

pub mod watchdog;
