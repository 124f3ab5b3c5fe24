//! Topic-level access control: `authorization.rules` (principal, action, topic filter, effect;
//! first match wins) and `authorization.defaultEffect`, applied to PUBLISH (Wills included)
//! and SUBSCRIBE. Reloaded with the configuration file (see `reload`); a reload applies to new
//! operations, not to subscriptions already granted.
//!
//! A PUBLISH's topic name matches a rule's filter as usual. A SUBSCRIBE filter is checked
//! safely: an `allow` rule applies only when its filter covers every topic the subscription
//! can match, a `deny` rule as soon as the two overlap, so `devices/#` is refused when
//! `devices/secret/#` is denied before `devices/#` is allowed.

use crate::config::{Action, Authorization, AuthorizationRule, Effect, Principal};
use crate::topic::{covers, matches, overlaps};

/// Who a connection is, for rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The client identifier.
    pub client_id: &'a str,
    /// The authenticated username, if any.
    pub username: Option<&'a str>,
    /// The name of the client's verified TLS certificate, if any (`authentication.certificateName`).
    pub cert_name: Option<&'a str>,
    /// The groups of the client's token.
    pub groups: &'a [Box<str>],
}

/// What is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// PUBLISH to a topic name.
    Publish,
    /// SUBSCRIBE to a topic filter.
    Subscribe,
}

/// The compiled rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<AuthorizationRule>,
    default_effect: Effect,
}

impl Acl {
    /// The rules of `authorization`.
    pub fn new(authorization: &Authorization) -> Acl {
        Acl { rules: authorization.rules.clone(), default_effect: authorization.default_effect }
    }

    /// Whether `who` may do `request` on `topic` (a topic name for publish, a filter for
    /// subscribe).
    pub fn allows(&self, who: Identity<'_>, request: Request, topic: &str) -> bool {
        for rule in &self.rules {
            let action = matches!(
                (rule.action, request),
                (Action::All, _) | (Action::Publish, Request::Publish) | (Action::Subscribe, Request::Subscribe)
            );
            let principal = match &rule.principal {
                Principal::Any => true,
                Principal::Anonymous => who.username.is_none(),
                Principal::User(u) => who.username == Some(u.as_str()),
                Principal::Client(c) => who.client_id == *c,
                Principal::Cn(cn) => who.cert_name == Some(cn.as_str()),
                Principal::Group(g) => who.groups.iter().any(|m| **m == **g),
            };
            if !action || !principal {
                continue;
            }
            let applies = match (request, rule.effect) {
                (Request::Publish, _) => matches(&rule.topic, topic),
                (Request::Subscribe, Effect::Allow) => covers(&rule.topic, topic),
                (Request::Subscribe, Effect::Deny) => overlaps(&rule.topic, topic),
            };
            if applies {
                return rule.effect == Effect::Allow;
            }
        }
        self.default_effect == Effect::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(yaml: &str) -> Acl {
        let a: Authorization = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Acl::new(&a)
    }

    fn user(name: &str) -> Identity<'_> {
        Identity { client_id: "some-client", username: Some(name), cert_name: None, groups: &[] }
    }

    #[test]
    fn first_matching_rule_wins_and_the_default_applies_otherwise() {
        let a = acl("defaultEffect: deny
rules:
  - { principal: 'user:admin', action: all, topic: '#', effect: allow }
  - { principal: '*', action: subscribe, topic: 'devices/secret/#', effect: deny }
  - { principal: '*', action: subscribe, topic: 'devices/#', effect: allow }
  - { principal: 'client:dev-1', action: publish, topic: 'devices/dev-1/#', effect: allow }
  - { principal: anonymous, action: publish, topic: 'public/#', effect: allow }");
        let dev = Identity { client_id: "dev-1", username: Some("d"), cert_name: None, groups: &[] };
        assert!(a.allows(user("admin"), Request::Subscribe, "#"));
        assert!(!a.allows(user("admin"), Request::Subscribe, "$SYS/#"), "'#' does not match $SYS topics");
        assert!(a.allows(dev, Request::Subscribe, "devices/7/+"));
        assert!(!a.allows(dev, Request::Subscribe, "devices/#"), "overlaps the denied secret subtree");
        assert!(!a.allows(dev, Request::Subscribe, "devices/+/status"), "could match devices/secret/status");
        assert!(!a.allows(dev, Request::Subscribe, "devices/secret/k"));
        assert!(a.allows(dev, Request::Publish, "devices/dev-1/status"));
        assert!(!a.allows(dev, Request::Publish, "devices/dev-2/status"));
        assert!(!a.allows(dev, Request::Publish, "public/x"), "not anonymous");
        assert!(a.allows(Identity::default(), Request::Publish, "public/x"));
        assert!(!a.allows(Identity::default(), Request::Subscribe, "other"), "default deny");
        assert!(Acl::default().allows(Identity::default(), Request::Publish, "x"), "no rules: allow");
        let cn = acl("defaultEffect: deny
rules:
  - { principal: 'cn:truck-17', action: all, topic: 'trucks/17/#', effect: allow }");
        let truck = |name| Identity { client_id: "c", username: None, cert_name: Some(name), groups: &[] };
        assert!(cn.allows(truck("truck-17"), Request::Publish, "trucks/17/pos"));
        assert!(!cn.allows(truck("truck-18"), Request::Publish, "trucks/17/pos"));
        assert!(!cn.allows(Identity::default(), Request::Publish, "trucks/17/pos"), "no certificate");
        let groups = acl("defaultEffect: deny
rules:
  - { principal: 'group:ui', action: subscribe, topic: 'fleet/#', effect: allow }");
        let ui: &[Box<str>] = &["viewers".into(), "ui".into()];
        let member = Identity { client_id: "c", username: Some("web"), cert_name: None, groups: ui };
        assert!(groups.allows(member, Request::Subscribe, "fleet/trucks/+"));
        assert!(!groups.allows(member, Request::Publish, "fleet/trucks/1"), "subscribe only");
        assert!(!groups.allows(user("web"), Request::Subscribe, "fleet/#"), "not in the group");
    }
}
