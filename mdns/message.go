package mdns

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
)

// DNS wire format (RFC 1035 section 4), as much as a responder for one
// host name needs: read a query's questions, write answers.

// Record types and classes.
const (
	typeA    = 1
	typeAAAA = 28
	typeANY  = 255

	classIN    = 1
	classANY   = 255
	cacheFlush = 0x8000 // top bit of an answer's class: this record replaces what caches hold (RFC 6762 10.2)
	unicastRes = 0x8000 // top bit of a question's class: the querier asks for a unicast answer (QU)
)

// errMalformed is a message that does not parse; it is dropped.
var errMalformed = errors.New("mdns: malformed message")

// question is one question of a query.
type question struct {
	name    string // as sent, without the final dot
	qtype   uint16
	class   uint16 // without the unicast bit
	unicast bool
}

// query is a parsed query message.
type query struct {
	id        uint16
	questions []question
}

// parseQuery reads a query. Responses, and queries with another opcode or
// a response code (RFC 6762 18.3, 18.11), are not queries: ok is false.
func parseQuery(b []byte) (q query, ok bool, err error) {
	if len(b) < 12 {
		return q, false, errMalformed
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&0x8000 != 0 || flags&0x7800 != 0 || flags&0x000f != 0 {
		return q, false, nil // a response, another opcode, or an rcode
	}
	q.id = binary.BigEndian.Uint16(b)
	n := int(binary.BigEndian.Uint16(b[4:]))
	off := 12
	for range n {
		name, next, err := readName(b, off)
		if err != nil {
			return q, false, err
		}
		if next+4 > len(b) {
			return q, false, errMalformed
		}
		class := binary.BigEndian.Uint16(b[next+2:])
		q.questions = append(q.questions, question{
			name:    name,
			qtype:   binary.BigEndian.Uint16(b[next:]),
			class:   class &^ unicastRes,
			unicast: class&unicastRes != 0,
		})
		off = next + 4
	}
	return q, true, nil
}

// readName reads the name at off, following compression pointers, and
// returns it (labels joined by dots) and the offset after it in b.
func readName(b []byte, off int) (string, int, error) {
	var labels []string
	end := -1 // where the name ends in the message: after its first pointer
	total := 0
	for hops := 0; ; hops++ {
		if off >= len(b) || hops > 127 {
			return "", 0, errMalformed
		}
		l := int(b[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			return strings.Join(labels, "."), end, nil
		case l&0xc0 == 0xc0:
			if off+2 > len(b) {
				return "", 0, errMalformed
			}
			ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
			if ptr >= off {
				return "", 0, errMalformed // only backwards: no loops
			}
			if end < 0 {
				end = off + 2
			}
			off = ptr
		case l&0xc0 != 0:
			return "", 0, errMalformed // the extended label types are unused
		default:
			if off+1+l > len(b) {
				return "", 0, errMalformed
			}
			total += l + 1
			if total > 255 {
				return "", 0, errMalformed
			}
			labels = append(labels, string(b[off+1:off+1+l]))
			off += 1 + l
		}
	}
}

// appendName writes name (dot separated, no final dot) uncompressed.
func appendName(b []byte, name string) []byte {
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// validName reports whether name can be written: labels of 1 to 63
// bytes, 255 bytes in all.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	for _, l := range strings.Split(name, ".") {
		if len(l) == 0 || len(l) > 63 {
			return false
		}
	}
	return true
}

// response is what a responder sends.
type response struct {
	id       uint16
	question *question // echoed in a legacy unicast answer
	name     string
	addrs    []netip.Addr
	ttl      uint32
	flush    bool // set the cache-flush bit (not in legacy unicast answers)
}

// appendResponse writes the message: an authoritative answer with one A
// or AAAA record for each address. The name is written once and pointed
// to after that.
func appendResponse(b []byte, r response) []byte {
	b = binary.BigEndian.AppendUint16(b, r.id)
	b = binary.BigEndian.AppendUint16(b, 0x8400) // QR, AA
	qd := uint16(0)
	if r.question != nil {
		qd = 1
	}
	b = binary.BigEndian.AppendUint16(b, qd)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.addrs)))
	b = append(b, 0, 0, 0, 0) // no authority, no additional records
	if r.question != nil {
		// As asked, whatever its case; the answers spell the name as
		// the responder does.
		b = appendName(b, r.question.name)
		b = binary.BigEndian.AppendUint16(b, r.question.qtype)
		b = binary.BigEndian.AppendUint16(b, r.question.class)
	}
	class := uint16(classIN)
	if r.flush {
		class |= cacheFlush
	}
	nameAt := -1
	for _, a := range r.addrs {
		if nameAt >= 0 {
			b = binary.BigEndian.AppendUint16(b, 0xc000|uint16(nameAt))
		} else {
			nameAt = len(b) // < 0x3fff: the header and one question come before it
			b = appendName(b, r.name)
		}
		t, data := uint16(typeA), a.AsSlice()
		if a.Is6() {
			t = typeAAAA
		}
		b = binary.BigEndian.AppendUint16(b, t)
		b = binary.BigEndian.AppendUint16(b, class)
		b = binary.BigEndian.AppendUint32(b, r.ttl)
		b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
		b = append(b, data...)
	}
	return b
}
