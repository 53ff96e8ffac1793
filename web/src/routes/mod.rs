//! The HTTP routes, apart from the security policy that guards them: [`auth`] (login, logout,
//! `me`), [`accounts`] (passwords, users and roles), [`api`] (REST, health, metrics, the UI's
//! pages and assets) and [`history`] (the stored history's routes).

pub mod accounts;
pub mod api;
pub mod auth;
pub mod history;
