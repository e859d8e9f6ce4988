//! stub

// ---------------------------------------------------------------------------
// Server-wide (non-matter) operations.

/// A principal as server-wide rules see it.
#[derive(Debug, Clone, Copy)]
pub struct ServerPrincipal<'a> {
    /// Principal id.
    pub id: &'a str,
    /// Server admin.
    pub admin: bool,
}

/// Operations on the server itself rather than on a matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOp {
    /// `mdrop admin org create`.
    CreateOrg,
    /// `mdrop admin invite`.
    CreateInvite,
}

impl AdminOp {
    /// Every admin operation (for exhaustive tests).
    pub const ALL: [Self; 2] = [Self::CreateOrg, Self::CreateInvite];

    fn describe(self) -> &'static str {
        match self {
            Self::CreateOrg => "create organizations",
            Self::CreateInvite => "create invites",
        }
    }
}

/// Decides a server-wide operation: only server admins may perform them.
pub fn decide_admin(principal: &ServerPrincipal<'_>, op: AdminOp) -> Result<(), AdminDenial> {
    if principal.admin {
        Ok(())
    } else {
        Err(AdminDenial(format!(
            "only a server admin may {}; {} is not an admin",
            op.describe(),
            principal.id
        )))
    }
}

/// Refusal of an [`AdminOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminDenial(pub String);

impl std::fmt::Display for AdminDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod admin_tests {
    use super::*;

    #[test]
    fn only_admins_administer() {
        for op in AdminOp::ALL {
            let admin = ServerPrincipal {
                id: "root@operator",
                admin: true,
            };
            assert_eq!(decide_admin(&admin, op), Ok(()));
            let member = ServerPrincipal {
                id: "alice@firm-a",
                admin: false,
            };
            let denial = decide_admin(&member, op).unwrap_err();
            assert!(denial.0.contains("only a server admin"), "{denial}");
            assert!(denial.0.contains("alice@firm-a"), "{denial}");
        }
    }
}
