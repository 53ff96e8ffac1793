//! The HTTP routes, apart from the security policy that guards them: [`auth`] (login, logout,
//! `me`), [`accounts`] (passwords, users and roles) and [`api`] (REST, health, metrics, the UI's pages and assets).

pub mod accounts;
pub mod api;
pub mod auth;
