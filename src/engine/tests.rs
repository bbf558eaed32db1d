//! Root-free unit tests of every kind's plan, apply, rollback, teardown and check against the
//! recording netlink fake.
