// Package network brings up the rescue's network: it sets links up, waits for
// carrier, and configures IPv4 on every wired interface, either by DHCP or
// statically from the kernel's ip= parameter.
//
// Configure is the entry point. It runs as PID 1 in the rescue (no shell, no
// helper programs: everything is netlink and raw sockets) and also on a host,
// where it needs CAP_NET_ADMIN and CAP_NET_RAW and really changes that
// host's interfaces (the tests run it inside network namespaces). Parsing
// (ParseIP, IPFromCmdline) works anywhere.
//
// Entropy: early in boot the kernel's random pool may not be ready, and a
// board without a hardware RNG (or QEMU's default CPU without RDRAND) can
// wait minutes for it. The DHCP library used here draws its transaction ids
// from a source that waits for that pool (up to two minutes, then fails), so
// this package builds its DHCP messages itself and takes transaction ids from
// getrandom(GRND_NONBLOCK) with a fallback to math/rand/v2 mixed with the MAC
// address: nothing on the DHCP path waits for entropy. A transaction id only
// has to be unlikely to collide with another client's; it is not a secret.
//
// Limits: DHCPv4 only (no DHCPv6, no SLAAC); leases are not renewed (the
// address is installed without a lifetime, so it stays after the lease time);
// BOOTP and RARP requested through ip= are served by DHCP, which BOOTP
// servers commonly answer too; wireless interfaces are skipped.
package network
