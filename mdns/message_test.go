package mdns

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
)

// Messages are checked against golang.org/x/net/dns/dnsmessage, an
// independent implementation of the wire format: it builds the queries
// (with name compression) and parses the answers.

// buildQuery makes a query with the questions, compressing names.
func buildQuery(t testing.TB, id uint16, qs ...dnsmessage.Question) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if err := b.Question(q); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func q(name string, typ dnsmessage.Type, class dnsmessage.Class) dnsmessage.Question {
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: class}
}

func TestParseQuery(t *testing.T) {
	pkt := buildQuery(t, 77,
		q("board-sn1.local.", dnsmessage.TypeA, dnsmessage.ClassINET),
		q("board-sn1.local.", dnsmessage.TypeAAAA, dnsmessage.ClassINET|0x8000), // compressed, QU
		q("_http._tcp.local.", dnsmessage.TypePTR, dnsmessage.ClassINET),
	)
	got, ok, err := parseQuery(pkt)
	if err != nil || !ok {
		t.Fatalf("parseQuery = %v, %v", ok, err)
	}
	want := query{id: 77, questions: []question{
		{name: "board-sn1.local", qtype: typeA, class: classIN},
		{name: "board-sn1.local", qtype: typeAAAA, class: classIN, unicast: true},
		{name: "_http._tcp.local", qtype: 12, class: classIN},
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(query{}, question{})); diff != "" {
		t.Errorf("parseQuery (-want +got):\n%s", diff)
	}
}

func TestParseQueryRejects(t *testing.T) {
	good := buildQuery(t, 1, q("a.local.", dnsmessage.TypeA, dnsmessage.ClassINET))
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name    string
		pkt     []byte
		wantErr bool
	}{
		{"short", good[:11], true},
		{"a response", with(func(b []byte) []byte { b[2] |= 0x80; return b }), false},
		{"another opcode", with(func(b []byte) []byte { b[2] |= 0x10; return b }), false},
		{"an rcode", with(func(b []byte) []byte { b[3] |= 0x03; return b }), false},
		{"question cut", good[:len(good)-2], true},
		{"name cut", good[:14], true},
		{"more questions than sent", with(func(b []byte) []byte { b[5] = 2; return b }), true},
		{"pointer forward", append(good[:12:12], 0xc0, 14, 0, 1, 0, 1, 0), true},
		{"pointer to itself", append(good[:12:12], 0xc0, 12, 0, 1, 0, 1), true},
		{"extended label", append(good[:12:12], 0x41, 0, 0, 1, 0, 1), true},
		{"label past the end", append(good[:12:12], 10, 'a', 0, 1, 0, 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, err := parseQuery(tt.pkt)
			if ok || (err != nil) != tt.wantErr {
				t.Errorf("parseQuery = ok %v, err %v; want not ok, error %v", ok, err, tt.wantErr)
			}
		})
	}
	// A name longer than 255 bytes.
	long := append([]byte(nil), good[:12]...)
	long[5] = 1
	for i := 0; i < 5; i++ {
		long = append(long, 63)
		for j := 0; j < 63; j++ {
			long = append(long, 'a')
		}
	}
	long = append(long, 0, 0, 1, 0, 1)
	if _, ok, err := parseQuery(long); ok || err == nil {
		t.Errorf("parseQuery(name of 320 bytes) = %v, %v; want an error", ok, err)
	}
}

func TestAppendResponse(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("10.0.2.15"), netip.MustParseAddr("fe80::5054:ff:fe12:3456")}
	for _, tt := range []struct {
		name string
		r    response
	}{
		{"multicast", response{name: "board-sn1.local", addrs: addrs, ttl: 120, flush: true}},
		{"legacy", response{id: 4242, question: &question{name: "BOARD-sn1.local", qtype: typeA, class: classIN}, name: "board-sn1.local", addrs: addrs[:1], ttl: 10}},
		{"goodbye", response{name: "board-sn1.local", addrs: addrs, ttl: 0, flush: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var p dnsmessage.Parser
			h, err := p.Start(appendResponse(nil, tt.r))
			if err != nil {
				t.Fatal(err)
			}
			if !h.Response || !h.Authoritative || h.ID != tt.r.id {
				t.Errorf("header %+v", h)
			}
			qs, err := p.AllQuestions()
			if err != nil {
				t.Fatal(err)
			}
			if tt.r.question != nil {
				if len(qs) != 1 || qs[0].Name.String() != tt.r.question.name+"." || qs[0].Type != dnsmessage.TypeA {
					t.Errorf("questions %v, want the one asked", qs)
				}
			} else if len(qs) != 0 {
				t.Errorf("questions %v, want none", qs)
			}
			as, err := p.AllAnswers()
			if err != nil {
				t.Fatal(err)
			}
			var got []netip.Addr
			for _, a := range as {
				if a.Header.Name.String() != "board-sn1.local." || a.Header.TTL != tt.r.ttl {
					t.Errorf("answer header %+v", a.Header)
				}
				wantClass := dnsmessage.ClassINET
				if tt.r.flush {
					wantClass |= 0x8000
				}
				if a.Header.Class != wantClass {
					t.Errorf("answer class %#x, want %#x", a.Header.Class, wantClass)
				}
				switch b := a.Body.(type) {
				case *dnsmessage.AResource:
					got = append(got, netip.AddrFrom4(b.A))
				case *dnsmessage.AAAAResource:
					got = append(got, netip.AddrFrom16(b.AAAA))
				default:
					t.Errorf("answer %T", b)
				}
			}
			if diff := cmp.Diff(tt.r.addrs, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseQuery(f *testing.F) {
	f.Add(buildQuery(f, 1, q("a.local.", dnsmessage.TypeA, dnsmessage.ClassINET), q("a.local.", dnsmessage.TypeAAAA, dnsmessage.ClassINET)))
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, ok, err := parseQuery(b)
		if err == nil && ok {
			for _, qu := range q.questions {
				if len(qu.name) > 255 {
					t.Errorf("name of %d bytes", len(qu.name))
				}
			}
		}
	})
}
