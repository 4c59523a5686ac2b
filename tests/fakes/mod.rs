//! Wire-level fakes of the platforms the tests cannot reach. Each implements the documented
//! HTTP API of its service (errors and rate limits included) on 127.0.0.1; the bridge reaches
//! it only through the base URL in its configuration.
#![allow(dead_code)]

pub mod discord;
pub mod messenger;
pub mod server;
pub mod telegram;
pub mod twilio;
pub mod viber;
pub mod vk;
pub mod whatsapp;
