package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routeMetric is the metric of the first interface's routes; the next
// interfaces get 101, 102, ... so that several default routes can coexist
// and the first interface (in link order) is preferred.
const routeMetric = 100

// Configure brings up the network as cfg says and returns what it did.
//
// With DHCP (the default, or ip=dhcp), it sets every wired interface up,
// waits for carrier (cfg.LinkTimeout) and runs DHCPv4 on all of them at once
// (cfg.DHCPTimeout each); it returns when every interface has either a lease
// or an error. With a static ip= it configures <device>, or the first wired
// interface to get carrier, even without carrier. The loopback interface is
// always set up. The list of interfaces is read once: a device that appears
// later (USB Ethernet) needs another call.
//
// Configure returns ErrDisabled for ip=off, ErrNoInterface when there is
// nothing to configure, and ErrNotConfigured (joined with each interface's
// error) when no interface got an address; Result is not nil in the last
// case. cfg.ResolvConf is written when name servers were found.
func Configure(ctx context.Context, cfg Config) (*Result, error) {
	c := cfg.withDefaults()
	if c.IP.Method == MethodOff {
		c.logf("network: disabled by ip=%s", c.IP.Autoconf)
		return &Result{}, ErrDisabled
	}
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.LinkSetUp(lo); err != nil {
			c.logf("network: lo: %v", err)
		}
	}
	links, err := waitCandidates(ctx, &c)
	if err != nil {
		return nil, err
	}

	res := &Result{Interfaces: make([]Interface, len(links))}
	for i, l := range links {
		res.Interfaces[i] = Interface{Name: l.Attrs().Name, HardwareAddr: l.Attrs().HardwareAddr, Method: c.IP.Method}
	}
	if c.IP.Method == MethodStatic {
		configureStatic(ctx, &c, links, res)
	} else {
		var wg sync.WaitGroup
		for i, l := range links {
			wg.Go(func() {
				configureDHCP(ctx, &c, l, routeMetric+i, &res.Interfaces[i])
			})
		}
		wg.Wait()
	}

	ok := res.Configured()
	if err := writeResolv(&c, res); err != nil && len(ok) > 0 {
		return res, err
	}
	if len(ok) == 0 {
		errs := []error{ErrNotConfigured}
		for _, it := range res.Interfaces {
			if it.Err != nil {
				errs = append(errs, it.Err)
			}
		}
		return res, errors.Join(errs...)
	}
	return res, nil
}

// waitCandidates returns the interfaces to configure, waiting up to
// LinkTimeout for the first to appear: a driver loaded just before (as
// the rescue does) registers its interface a moment later.
func waitCandidates(ctx context.Context, c *Config) ([]netlink.Link, error) {
	deadline := time.Now().Add(c.LinkTimeout)
	for first := true; ; first = false {
		links, skipped, err := candidates(c)
		if err == nil || !errors.Is(err, ErrNoInterface) || time.Now().After(deadline) || ctx.Err() != nil {
			if len(skipped) > 0 {
				c.logf("network: skipping %v", skipped)
			}
			if err == nil {
				var names []string
				for _, l := range links {
					names = append(names, l.Attrs().Name)
				}
				c.logf("network: interfaces %v", names)
			}
			return links, err
		}
		if first {
			c.logf("network: waiting up to %v for an interface", c.LinkTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// candidates lists the interfaces to configure, in link (index) order,
// and those skipped with the reason.
func candidates(c *Config) ([]netlink.Link, []string, error) {
	all, err := netlink.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("network: listing links: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Attrs().Index < all[j].Attrs().Index })
	var skipped []string
	var links []netlink.Link
	for _, l := range all {
		a := l.Attrs()
		if len(c.Interfaces) > 0 && !slices.Contains(c.Interfaces, a.Name) {
			continue
		}
		if c.IP.Device != "" && a.Name != c.IP.Device {
			continue
		}
		if why := notWired(c, l); why != "" {
			if a.Flags&net.FlagLoopback == 0 {
				skipped = append(skipped, a.Name+" ("+why+")")
			}
			continue
		}
		links = append(links, l)
	}
	if len(links) == 0 {
		switch {
		case c.IP.Device != "":
			return nil, skipped, fmt.Errorf("%w: %q not found or not wired", ErrNoInterface, c.IP.Device)
		case len(c.Interfaces) > 0:
			return nil, skipped, fmt.Errorf("%w among %v", ErrNoInterface, c.Interfaces)
		}
		return nil, skipped, ErrNoInterface
	}
	return links, skipped, nil
}

// notWired says why l is not a wired Ethernet-like interface, or "".
func notWired(c *Config, l netlink.Link) string {
	a := l.Attrs()
	switch {
	case a.Flags&net.FlagLoopback != 0:
		return "loopback"
	case a.EncapType != "" && a.EncapType != "ether":
		return a.EncapType
	case len(a.HardwareAddr) != 6:
		return "no MAC address"
	}
	for _, f := range []string{"wireless", "phy80211"} {
		if _, err := os.Stat(filepath.Join(c.SysClassNet, a.Name, f)); err == nil {
			return "wireless"
		}
	}
	return ""
}

// hasCarrier reports whether the link is up with carrier. Drivers that do
// not report an operational state (OperUnknown) are judged by IFF_LOWER_UP.
func hasCarrier(l netlink.Link) bool {
	a := l.Attrs()
	if a.OperState == netlink.OperUp {
		return true
	}
	return a.OperState == netlink.OperUnknown && a.RawFlags&unix.IFF_LOWER_UP != 0
}

// waitCarrier sets the link up and polls until it has carrier.
func waitCarrier(ctx context.Context, c *Config, name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("network: %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("network: %s: set up: %w", name, err)
	}
	start := time.Now()
	deadline := time.NewTimer(c.LinkTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		// Ask again each time: a USB device can vanish, and the
		// attributes are a snapshot.
		l, err = netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("network: %s: %w", name, err)
		}
		if hasCarrier(l) {
			c.logf("network: %s: carrier after %v", name, time.Since(start).Round(time.Millisecond))
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("network: %s: %w", name, ctx.Err())
		case <-deadline.C:
			return l, fmt.Errorf("%w on %s after %v", ErrNoCarrier, name, c.LinkTimeout)
		case <-tick.C:
		}
	}
}

func configureDHCP(ctx context.Context, c *Config, l netlink.Link, metric int, it *Interface) {
	name := l.Attrs().Name
	start := time.Now()
	l, err := waitCarrier(ctx, c, name)
	if err != nil {
		it.Err = err
		c.logf("%v", err)
		return
	}
	ack, err := dhcpLease(ctx, c, c.IP, name, l.Attrs().HardwareAddr)
	if err != nil {
		it.Err = err
		c.logf("%v", err)
		return
	}
	got, err := leaseInterface(ack, c.IP)
	if err == nil {
		got.Name, got.HardwareAddr = name, l.Attrs().HardwareAddr
		err = apply(l, &got, metric)
	}
	if err != nil {
		it.Err = fmt.Errorf("network: %s: %w", name, err)
		c.logf("%v", it.Err)
		return
	}
	*it = got
	c.logf("network: %v (DHCP server %v, lease %v) in %v", got, got.Server, got.LeaseTime, time.Since(start).Round(time.Millisecond))
}

func configureStatic(ctx context.Context, c *Config, links []netlink.Link, res *Result) {
	ip := c.IP
	pick := 0
	if len(links) > 1 {
		pick = firstWithCarrier(ctx, c, links)
	} else if _, err := waitCarrier(ctx, c, links[0].Attrs().Name); err != nil {
		// A static address works without carrier: the cable may come later.
		c.logf("%v; configuring anyway", err)
	}
	l, err := netlink.LinkByName(links[pick].Attrs().Name)
	if err != nil {
		res.Interfaces[pick].Err = fmt.Errorf("network: %w", err)
		return
	}
	it := Interface{
		Name:         l.Attrs().Name,
		HardwareAddr: l.Attrs().HardwareAddr,
		Method:       MethodStatic,
		Address:      ip.Prefix(),
		Gateway:      ip.Gateway,
		DNS:          ip.DNS,
		NTP:          ip.NTP,
		Hostname:     ip.Hostname,
		Domain:       ip.NISDomain,
		Server:       ip.ServerIP,
	}
	if it.Hostname == "" {
		it.Hostname = ip.ClientIP.String() // the kernel's default
	}
	if err := netlink.LinkSetUp(l); err != nil {
		res.Interfaces[pick].Err = fmt.Errorf("network: %s: set up: %w", it.Name, err)
		return
	}
	if err := apply(l, &it, routeMetric); err != nil {
		res.Interfaces[pick].Err = fmt.Errorf("network: %s: %w", it.Name, err)
		c.logf("%v", res.Interfaces[pick].Err)
		return
	}
	res.Interfaces[pick] = it
	for i := range res.Interfaces {
		if i != pick {
			res.Interfaces[i].Err = fmt.Errorf("network: %s: not used, static address on %s", res.Interfaces[i].Name, it.Name)
		}
	}
	c.logf("network: %v", it)
}

// firstWithCarrier sets all links up and returns the index of the first
// (in link order) to have carrier, or 0 when none has within LinkTimeout.
func firstWithCarrier(ctx context.Context, c *Config, links []netlink.Link) int {
	for _, l := range links {
		if err := netlink.LinkSetUp(l); err != nil {
			c.logf("network: %s: set up: %v", l.Attrs().Name, err)
		}
	}
	deadline := time.Now().Add(c.LinkTimeout)
	for {
		for i, l := range links {
			if cur, err := netlink.LinkByName(l.Attrs().Name); err == nil && hasCarrier(cur) {
				return i
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.logf("network: no carrier on %d interfaces after %v; using %s", len(links), c.LinkTimeout, links[0].Attrs().Name)
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apply installs the address and routes of it on l.
func apply(l netlink.Link, it *Interface, metric int) error {
	p := it.Address
	if !p.IsValid() {
		return errors.New("no address to apply")
	}
	ipnet := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
	addr := &netlink.Addr{IPNet: ipnet}
	if p.Bits() < 31 {
		addr.Broadcast = broadcast(p)
	}
	if err := netlink.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("address %v: %w", p, err)
	}
	idx := l.Attrs().Index
	for _, r := range it.Routes {
		if err := addRoute(idx, p, r.Dst, r.Gateway, metric); err != nil {
			return fmt.Errorf("route %v via %v: %w", r.Dst, r.Gateway, err)
		}
	}
	if it.Gateway.IsValid() {
		if err := addRoute(idx, p, netip.Prefix{}, it.Gateway, metric); err != nil {
			return fmt.Errorf("default route via %v: %w", it.Gateway, err)
		}
	}
	return nil
}

// addRoute adds dst via gw (a default route when dst is invalid; on-link
// when gw is invalid). A gateway outside the interface's subnet (a /32
// lease, say) first gets an on-link host route so the kernel accepts it.
func addRoute(idx int, local, dst netip.Prefix, gw netip.Addr, metric int) error {
	r := &netlink.Route{LinkIndex: idx, Priority: metric}
	if dst.IsValid() {
		r.Dst = &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), 32)}
	}
	if !gw.IsValid() {
		r.Scope = netlink.SCOPE_LINK
		return netlink.RouteReplace(r)
	}
	if !local.Masked().Contains(gw) {
		host := &netlink.Route{
			LinkIndex: idx,
			Dst:       &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(32, 32)},
			Scope:     netlink.SCOPE_LINK,
			Priority:  metric,
		}
		if err := netlink.RouteReplace(host); err != nil {
			return err
		}
	}
	r.Gw = gw.AsSlice()
	return netlink.RouteReplace(r)
}

func broadcast(p netip.Prefix) net.IP {
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 1 << (7 - uint(i%8))
	}
	return net.IP(b[:])
}
