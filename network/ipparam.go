package network

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Method says how an interface gets its IPv4 configuration.
type Method int

// Methods. The zero value is DHCP: with no ip= parameter at all the kernel's
// rule is "configure everything by autoconfiguration".
const (
	MethodDHCP Method = iota
	MethodStatic
	MethodOff
)

func (m Method) String() string {
	switch m {
	case MethodDHCP:
		return "dhcp"
	case MethodStatic:
		return "static"
	case MethodOff:
		return "off"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// IPParam is the kernel's ip= (alias nfsaddrs=) parameter, as defined in the
// kernel's Documentation/admin-guide/nfs/nfsroot.rst:
//
//	ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
//
// or the <autoconf> word alone (ip=dhcp, ip=off, ...). Fields left empty or
// given as 0.0.0.0 are unset (the zero netip.Addr). When Method is
// MethodDHCP, the fields that are set override what the DHCP server says,
// as the kernel does (its command line wins over the server's answer).
type IPParam struct {
	// Method is what the parameter asks for: a client address means
	// MethodStatic; otherwise DHCP unless <autoconf> is off, none or a word
	// the kernel does not know.
	Method Method

	// Autoconf is the <autoconf> word as given: "", on, any, dhcp, bootp,
	// rarp, both, off, none (or an unknown word, which means off). BOOTP,
	// RARP and "both" are served by DHCP here.
	Autoconf string

	ClientIP netip.Addr
	ServerIP netip.Addr
	Gateway  netip.Addr

	// Netmask is the mask as given, or the classful mask of ClientIP when
	// it was not given (as the kernel guesses it); unset without either.
	Netmask netip.Addr

	// Hostname is the part of <hostname> before the first '.'; NISDomain is
	// the rest. The kernel uses the client address in ASCII when no
	// hostname is given; Hostname stays empty here, Result fills it in.
	Hostname  string
	NISDomain string

	// Device is the interface to use; empty means any wired interface.
	Device string

	// DNS holds <dns0-ip> and <dns1-ip>, those that are set, in order.
	DNS []netip.Addr
	// NTP holds <ntp0-ip> if set.
	NTP []netip.Addr

	// ClientIDType and ClientID come from "dhcp,<client-id-type>,<client-id-value>".
	// As in the kernel, the client identifier option is sent only when
	// ClientIDType is not zero.
	ClientIDType byte
	ClientID     string
}

// Prefix returns ClientIP with the netmask's length, or an invalid prefix
// when either is unset.
func (p *IPParam) Prefix() netip.Prefix {
	if !p.ClientIP.IsValid() || !p.Netmask.IsValid() {
		return netip.Prefix{}
	}
	ones, ok := maskLen(p.Netmask)
	if !ok {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(p.ClientIP, ones)
}

// ParseIP parses the value of the kernel's ip= parameter (without "ip=").
//
// It follows the kernel's own parser (net/ipv4/ipconfig.c): a value that is
// an <autoconf> word alone selects autoconfiguration; "", "off" and "none"
// turn networking off; anything else is the colon-separated list, where
// empty fields and 0.0.0.0 mean "not given" and fields after the tenth are
// ignored. Unlike the kernel, which reads garbage as some address, a field
// that is not a dotted-quad IPv4 address is an error (ErrIPParam).
func ParseIP(value string) (*IPParam, error) {
	p := &IPParam{}
	if ok, err := p.setAutoconf(value); err != nil {
		return nil, err
	} else if ok {
		p.Method = MethodDHCP
		return p, nil
	}
	if value == "" || value == "off" || value == "none" {
		p.Autoconf = value
		p.Method = MethodOff
		return p, nil
	}

	p.Method = MethodDHCP
	fields := strings.Split(value, ":")
	for i, f := range fields {
		if f == "" {
			continue
		}
		var err error
		switch i {
		case 0:
			p.ClientIP, err = parseAddr("client-ip", f)
		case 1:
			p.ServerIP, err = parseAddr("server-ip", f)
		case 2:
			p.Gateway, err = parseAddr("gw-ip", f)
		case 3:
			p.Netmask, err = parseAddr("netmask", f)
			if err == nil && p.Netmask.IsValid() {
				if _, ok := maskLen(p.Netmask); !ok {
					err = fmt.Errorf("%w: netmask %q is not a contiguous mask", ErrIPParam, f)
				}
			}
		case 4:
			p.Hostname, p.NISDomain, _ = strings.Cut(f, ".")
		case 5:
			p.Device = f
		case 6:
			var ok bool
			ok, err = p.setAutoconf(f)
			if err == nil && !ok {
				p.Autoconf = f
				// The kernel turns autoconfiguration off only when
				// no client address was given in field 0.
				if !p.ClientIP.IsValid() {
					p.Method = MethodOff
				}
			}
		case 7, 8:
			var a netip.Addr
			a, err = parseAddr(fmt.Sprintf("dns%d-ip", i-7), f)
			if a.IsValid() {
				p.DNS = append(p.DNS, a)
			}
		case 9:
			var a netip.Addr
			a, err = parseAddr("ntp0-ip", f)
			if a.IsValid() {
				p.NTP = append(p.NTP, a)
			}
		}
		if err != nil {
			return nil, err
		}
	}

	if p.ClientIP.IsValid() {
		p.Method = MethodStatic
		if !p.Netmask.IsValid() {
			m, ok := classfulMask(p.ClientIP)
			if !ok {
				return nil, fmt.Errorf("%w: cannot guess the netmask for %v", ErrIPParam, p.ClientIP)
			}
			p.Netmask = m
		}
	}
	return p, nil
}

// setAutoconf records w if it is one of the kernel's autoconfiguration
// words that enable autoconfiguration (ic_proto_name returning 1).
func (p *IPParam) setAutoconf(w string) (bool, error) {
	switch w {
	case "on", "any", "bootp", "rarp", "both":
		p.Autoconf = w
		return true, nil
	}
	// The kernel matches only the first four bytes: "dhcp" followed by
	// anything is DHCP, and "dhcp,<type>,<value>" carries a client id.
	if !strings.HasPrefix(w, "dhcp") {
		return false, nil
	}
	p.Autoconf = "dhcp"
	i := strings.Index(w, "dhcp,")
	if i < 0 {
		return true, nil
	}
	rest := w[i+len("dhcp,"):]
	typ, val, ok := strings.Cut(rest, ",")
	if !ok {
		return true, nil // no value: the kernel ignores the client id.
	}
	t, err := strconv.ParseUint(typ, 0, 8)
	if err != nil {
		return false, fmt.Errorf("%w: client-id-type %q", ErrIPParam, typ)
	}
	if len(val) > 251 { // the kernel copies at most 251 bytes
		val = val[:251]
	}
	p.ClientIDType, p.ClientID = byte(t), val
	return true, nil
}

// parseAddr parses an IPv4 address field; 0.0.0.0 means "not given".
func parseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%w: %s %q is not an IPv4 address", ErrIPParam, field, s)
	}
	if a.IsUnspecified() {
		return netip.Addr{}, nil
	}
	return a, nil
}

// classfulMask is the kernel's guess (ic_defaults) when no netmask is given.
func classfulMask(a netip.Addr) (netip.Addr, bool) {
	switch b := a.As4()[0]; {
	case b < 128:
		return netip.AddrFrom4([4]byte{255, 0, 0, 0}), true
	case b < 192:
		return netip.AddrFrom4([4]byte{255, 255, 0, 0}), true
	case b < 224:
		return netip.AddrFrom4([4]byte{255, 255, 255, 0}), true
	}
	return netip.Addr{}, false
}

// maskLen returns the prefix length of a contiguous IPv4 netmask.
func maskLen(m netip.Addr) (int, bool) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	return ones, v == 0
}

// IPFromCmdline finds the ip= (or nfsaddrs=) parameter in a kernel command
// line such as the content of /proc/cmdline and parses it. The last one
// wins, as in the kernel. It returns nil and no error when there is none.
func IPFromCmdline(cmdline string) (*IPParam, error) {
	var val string
	found := false
	for _, arg := range cmdlineArgs(cmdline) {
		k, v, ok := strings.Cut(arg, "=")
		if ok && (k == "ip" || k == "nfsaddrs") {
			val, found = v, true
		}
	}
	if !found {
		return nil, nil
	}
	return ParseIP(val)
}

// cmdlineArgs splits a kernel command line like the kernel's next_arg:
// at spaces outside double quotes, with the quotes removed.
func cmdlineArgs(s string) []string {
	var args []string
	var b strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if have {
				args = append(args, b.String())
				b.Reset()
				have = false
			}
		default:
			b.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, b.String())
	}
	return args
}
