//! The HTTP routes, apart from the security policy that guards them: [`auth`] (login, logout,
//! `me`, the user list) and [`api`] (REST, health, metrics, the UI's pages and assets).

pub mod api;
pub mod auth;
