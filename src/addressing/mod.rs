//! Addressing of the guest interface: the plan of static addresses, default route and the
//! announce (their apply and undo in `apply`), DHCP in its own module. The same for every kind.

pub mod apply;
pub mod dhcp;

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::RouteNetlinkMessage;

use crate::driver_api::PlanCtx;
use crate::error::Error;
use crate::netlink::msg;
use crate::plan::DhcpStep;
use crate::plan::{Op, Plan, Step};
use crate::request::{Addressing, DhcpClient, DhcpSpec, Family};

pub fn plan_static(ctx: &mut PlanCtx<'_>, plan: &mut Plan) -> Result<(), Error> {
    let ifname = plan.guest_ifname.clone();
    if ctx.req.guest_link_down {
        // CNI `disableContainerInterface`: the interface exists, down, with nothing on it.
        plan.steps.extend(plan.ready.take());
        return Ok(());
    }
    let (address, gateway) = match &ctx.req.addressing {
        Addressing::List { addresses, routes } => {
            plan_list(ctx, plan, addresses, routes);
            return Ok(());
        }
        Addressing::None => {
            plan.steps
                .push(Step::new("guest-link-up", Op::LinkUp { ifname }));
            plan.steps.extend(plan.ready.take());
            return Ok(());
        }
        Addressing::Static { address, gateway } => (*address, *gateway),
        Addressing::Dhcp(spec) => return plan_dhcp(ctx, plan, spec),
    };

    // Announce setup must precede the up (a devconf change sent with IFF_UP does nothing).
    if address.addr().is_ipv4() {
        plan.steps.push(Step::new(
            "guest-arp-notify",
            Op::SetArpNotify {
                ifname: ifname.clone(),
            },
        ));
    } else {
        plan.steps.push(enable_ipv6(&ifname));
        plan.steps.push(Step::new(
            "guest-ndisc-notify",
            Op::SetNdiscNotify {
                ifname: ifname.clone(),
            },
        ));
    }
    plan.steps.push(Step::new(
        "guest-link-up",
        Op::LinkUp {
            ifname: ifname.clone(),
        },
    ));
    plan.steps.push(Step::new(
        "add-address",
        Op::AddAddress {
            ifname: ifname.clone(),
            address,
        },
    ));
    plan.addresses.push(address);

    if let Some(gw) = gateway {
        let routes = guest_routes(ctx, &address)?;
        // The original deletes the family's default route before adding its own.
        for r in routes.iter().filter(|r| msg::is_main_default(r)) {
            plan.steps.push(Step::new(
                "delete-default-route",
                Op::DeleteRoute {
                    route: Box::new(r.clone()),
                    text: describe_route(ctx, r),
                },
            ));
        }
        if needs_host_route(&address, gw, &routes) {
            plan.steps.push(Step::new(
                "add-gateway-route",
                Op::AddHostRoute {
                    gateway: gw,
                    ifname: ifname.clone(),
                },
            ));
        }
        plan.steps.push(Step::new(
            "add-default-route",
            Op::AddDefaultRoute {
                gateway: gw,
                ifname: ifname.clone(),
            },
        ));
        plan.gateway = Some(gw);
    }
    plan.steps.extend(plan.ready.take());
    if plan.announce {
        plan.steps
            .push(Step::new("announce", Op::Announce { ifname }));
    }
    Ok(())
}

/// Addresses and routes given whole (a CNI IPAM result): every address, then each route —
/// a default route through `AddDefaultRoute`, a gateway outside every subnet first reached by
/// an on-link host route. The guest is a fresh namespace: nothing of its own is replaced.
fn plan_list(
    ctx: &PlanCtx<'_>,
    plan: &mut Plan,
    addresses: &[IpNet],
    routes: &[crate::request::RouteSpec],
) {
    let ifname = plan.guest_ifname.clone();
    let step = |name, op| Step::new(name, op);
    if addresses.iter().any(|a| a.addr().is_ipv4()) {
        plan.steps.push(step(
            "guest-arp-notify",
            Op::SetArpNotify {
                ifname: ifname.clone(),
            },
        ));
    }
    if addresses.iter().any(|a| a.addr().is_ipv6()) {
        plan.steps.push(enable_ipv6(&ifname));
        plan.steps.push(step(
            "guest-ndisc-notify",
            Op::SetNdiscNotify {
                ifname: ifname.clone(),
            },
        ));
        if !ctx.req.dad {
            plan.steps.push(step(
                "guest-no-dad",
                Op::DisableDad {
                    ifname: ifname.clone(),
                },
            ));
        }
    }
    plan.steps.push(step(
        "guest-link-up",
        Op::LinkUp {
            ifname: ifname.clone(),
        },
    ));
    for a in addresses {
        plan.steps.push(step(
            "add-address",
            Op::AddAddress {
                ifname: ifname.clone(),
                address: *a,
            },
        ));
        plan.addresses.push(*a);
    }
    for r in routes {
        if let Some(gw) = r.via {
            let on_link = addresses.iter().any(|a| a.contains(&gw))
                || matches!(gw, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if !on_link {
                plan.steps.push(step(
                    "add-gateway-route",
                    Op::AddHostRoute {
                        gateway: gw,
                        ifname: ifname.clone(),
                    },
                ));
            }
            if r.dst.prefix_len() == 0 {
                plan.steps.push(step(
                    "add-default-route",
                    Op::AddDefaultRoute {
                        gateway: gw,
                        ifname: ifname.clone(),
                    },
                ));
                plan.gateway.get_or_insert(gw);
                continue;
            }
        }
        plan.steps.push(step(
            "add-route",
            Op::AddRoute {
                dst: r.dst,
                via: r.via,
                ifname: ifname.clone(),
            },
        ));
    }
    plan.steps.extend(plan.ready.take());
    if plan.announce {
        plan.steps.push(step(
            "announce",
            Op::Announce {
                ifname: ifname.clone(),
            },
        ));
    }
}

/// IPv6 on for the new interface alone (a guest may start interfaces with it off); first,
/// since every other IPv6 setting and address needs it.
fn enable_ipv6(ifname: &str) -> Step {
    Step::new(
        "guest-ipv6-on",
        Op::EnableIpv6 {
            ifname: ifname.to_string(),
        },
    )
}

fn plan_dhcp(ctx: &mut PlanCtx<'_>, plan: &mut Plan, spec: &DhcpSpec) -> Result<(), Error> {
    let ifname = plan.guest_ifname.clone();
    let v6 = spec.v6 || ctx.req.family == Some(Family::V6);
    if spec.client == DhcpClient::Udhcpc && v6 {
        return Err(Error::Invalid(
            "udhcpc speaks only DHCPv4: use dhcp6 (built in) or dhclient with -a 6".into(),
        ));
    }
    let resolv = if ctx.req.dns_resolv {
        Some(dhcp::resolv_target(ctx.guest)?)
    } else {
        None
    };
    let name = |n: &'static str| {
        Step::new(
            n,
            Op::LinkUp {
                ifname: ifname.clone(),
            },
        )
    };
    if v6 {
        plan.steps.push(enable_ipv6(&ifname));
        plan.steps.push(Step::new(
            "guest-ndisc-notify",
            Op::SetNdiscNotify {
                ifname: ifname.clone(),
            },
        ));
        // DHCPv6 clients speak from the link-local address: make it usable at once.
        if spec.client != DhcpClient::Slaac {
            plan.steps.push(Step::new(
                "guest-no-dad",
                Op::DisableDad {
                    ifname: ifname.clone(),
                },
            ));
        }
    } else {
        plan.steps.push(Step::new(
            "guest-arp-notify",
            Op::SetArpNotify {
                ifname: ifname.clone(),
            },
        ));
    }
    plan.steps.push(name("guest-link-up"));
    plan.steps.extend(plan.ready.take());
    plan.steps.push(Step::new(
        "dhcp-lease",
        Op::Dhcp(Box::new(DhcpStep {
            ifname: ifname.clone(),
            spec: spec.clone(),
            v6,
            hostname: dhcp::hostname_for(ctx.guest),
            timeout: ctx.req.dhcp_timeout,
            resolv,
        })),
    ));
    if spec.keep {
        plan.steps.push(Step::new(
            "dhcp-supervise",
            Op::DhcpRecord {
                ifname: ifname.clone(),
            },
        ));
    }
    if plan.announce {
        plan.steps
            .push(Step::new("announce", Op::Announce { ifname }));
    }
    Ok(())
}

fn guest_routes(ctx: &mut PlanCtx<'_>, address: &IpNet) -> Result<Vec<RouteMessage>, Error> {
    let family = msg::family_of(&address.addr());
    let all = ctx.guest_nl.dump(msg::dump_routes(family)).map_err(|e| {
        Error::netlink(
            format!("cannot list the routes of guest {}", ctx.guest.spec),
            e,
        )
    })?;
    Ok(all
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => Some(r),
            _ => None,
        })
        .collect())
}

/// Whether the gateway needs an on-link host route: it is outside the new subnet, not
/// link-local, and no other (non-default) route of the guest reaches it.
pub fn needs_host_route(address: &IpNet, gw: IpAddr, routes: &[RouteMessage]) -> bool {
    if address.contains(&gw) {
        return false;
    }
    if let IpAddr::V6(v6) = gw {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return false;
        }
    }
    !routes.iter().any(|r| {
        !msg::is_main_default(r)
            && msg::route_table(r) == 254
            && msg::route_dst(r)
                .and_then(|(ip, len)| IpNet::new(ip, len).ok())
                .is_some_and(|net| net.prefix_len() > 0 && net.contains(&gw))
    })
}

fn describe_route(ctx: &mut PlanCtx<'_>, r: &RouteMessage) -> String {
    use netlink_packet_route::route::{RouteAddress, RouteAttribute};
    let mut s = String::from("default");
    for a in &r.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => s.push_str(&format!(" via {g}")),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => s.push_str(&format!(" via {g}")),
            RouteAttribute::Oif(i) => {
                let name = match ctx.guest_nl.get(msg::get_link_by_index(*i)) {
                    Ok(Some(RouteNetlinkMessage::NewLink(l))) => {
                        msg::link_name(&l).map(str::to_string)
                    }
                    _ => None,
                };
                match name {
                    Some(n) => s.push_str(&format!(" dev {n}")),
                    None => s.push_str(&format!(" oif {i}")),
                }
            }
            RouteAttribute::Priority(p) => s.push_str(&format!(" metric {p}")),
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::route::{RouteAddress, RouteAttribute};

    fn route(dst: &str) -> RouteMessage {
        let net: IpNet = dst.parse().unwrap();
        let mut m = RouteMessage::default();
        m.header.table = 254;
        m.header.kind = netlink_packet_route::route::RouteType::Unicast;
        m.header.destination_prefix_length = net.prefix_len();
        if net.prefix_len() > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(net.addr())));
        }
        m
    }

    #[test]
    fn gateway_inside_subnet_needs_no_host_route() {
        let a: IpNet = "192.168.4.25/20".parse().unwrap();
        assert!(!needs_host_route(&a, "192.168.4.1".parse().unwrap(), &[]));
    }

    #[test]
    fn gateway_outside_subnet_needs_one_unless_routed() {
        let a: IpNet = "10.0.0.5/24".parse().unwrap();
        let gw: IpAddr = "10.9.9.1".parse().unwrap();
        assert!(needs_host_route(&a, gw, &[]));
        assert!(needs_host_route(&a, gw, &[route("0.0.0.0/0")]));
        assert!(!needs_host_route(&a, gw, &[route("10.9.0.0/16")]));
    }

    #[test]
    fn link_local_v6_gateway_is_on_link() {
        let a: IpNet = "fd00::5/64".parse().unwrap();
        assert!(!needs_host_route(&a, "fe80::1".parse().unwrap(), &[]));
        assert!(needs_host_route(&a, "fd01::1".parse().unwrap(), &[]));
    }
}
