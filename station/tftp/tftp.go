// Package tftp is a small read-only TFTP server (RFC 1350) with option
// negotiation (RFC 2347): block size (RFC 2348), transfer size and timeout
// (RFC 2349). A factory station serves U-Boot boards and PXE ROMs their
// first files with it. Writes are refused; names are looked up in an
// fs.FS, so no request can reach outside it.
package tftp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Opcodes.
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes.
const (
	errNotDefined  = 0
	errNotFound    = 1
	errAccess      = 2
	errIllegal     = 4
	errBadOption   = 8
	defaultBlock   = 512
	maxBlock       = 65464
	defaultTimeout = time.Second
	retries        = 5
)

// Server serves files from Root.
type Server struct {
	Root fs.FS
	// Logf, when set, is told about each transfer.
	Logf func(format string, args ...any)
	// Timeout is how long to wait for an ACK before sending again,
	// unless the client asks for another (option "timeout").
	Timeout time.Duration

	wg sync.WaitGroup
}

// Serve answers requests on conn (usually UDP port 69) until ctx ends or
// conn fails. Each transfer runs from its own socket, as the protocol
// wants: a new transfer id (port) per transfer.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	laddr, _ := conn.LocalAddr().(*net.UDPAddr)
	buf := make([]byte, 1500)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			s.wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("tftp: %w", err)
		}
		req := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.transfer(ctx, laddr, peer, req)
		}()
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// request is a parsed RRQ/WRQ.
type request struct {
	op       uint16
	file     string
	mode     string
	blksize  int
	timeout  time.Duration
	wantSize bool
	oack     []string // options accepted, in the client's order
}

func parseRequest(b []byte) (*request, error) {
	if len(b) < 4 {
		return nil, errors.New("short request")
	}
	r := &request{op: binary.BigEndian.Uint16(b), blksize: defaultBlock}
	if b[len(b)-1] != 0 {
		return nil, errors.New("request not NUL-terminated")
	}
	f := strings.Split(string(b[2:len(b)-1]), "\x00")
	if len(f) < 2 || len(f)%2 != 0 {
		return nil, errors.New("malformed request")
	}
	r.file, r.mode = f[0], strings.ToLower(f[1])
	if r.mode != "octet" && r.mode != "netascii" {
		return nil, fmt.Errorf("mode %q unsupported", f[1])
	}
	for i := 2; i+1 < len(f); i += 2 {
		name, val := strings.ToLower(f[i]), f[i+1]
		switch name {
		case "blksize":
			n, err := strconv.Atoi(val)
			if err != nil || n < 8 {
				return nil, fmt.Errorf("bad blksize %q", val)
			}
			r.blksize = min(n, maxBlock)
			r.oack = append(r.oack, name, strconv.Itoa(r.blksize))
		case "timeout":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 255 {
				return nil, fmt.Errorf("bad timeout %q", val)
			}
			r.timeout = time.Duration(n) * time.Second
			r.oack = append(r.oack, name, val)
		case "tsize":
			r.wantSize = true
			r.oack = append(r.oack, name, "") // filled with the size
		}
		// Unknown options are ignored, as RFC 2347 says.
	}
	return r, nil
}

func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}

// fsName turns a TFTP file name into an fs.FS path: clients send "/x",
// "x" or "./x"; anything climbing out is refused by fs.ValidPath.
func fsName(name string) (string, bool) {
	name = strings.TrimLeft(name, "/")
	name = strings.TrimPrefix(name, "./")
	return name, fs.ValidPath(name) && name != "."
}

func (s *Server) transfer(ctx context.Context, laddr *net.UDPAddr, peer net.Addr, req []byte) {
	local := &net.UDPAddr{}
	if laddr != nil {
		local.IP = laddr.IP
	}
	c, err := net.ListenUDP("udp", local)
	if err != nil {
		s.logf("tftp: %v", err)
		return
	}
	defer c.Close()
	r, err := parseRequest(req)
	if err != nil {
		c.WriteTo(errorPacket(errIllegal, err.Error()), peer)
		return
	}
	if r.op == opWRQ {
		c.WriteTo(errorPacket(errAccess, "read-only server"), peer)
		return
	}
	if r.op != opRRQ {
		c.WriteTo(errorPacket(errIllegal, "expected a read request"), peer)
		return
	}
	name, ok := fsName(r.file)
	if !ok {
		c.WriteTo(errorPacket(errAccess, "bad file name"), peer)
		s.logf("tftp: %s: refused %q", peer, r.file)
		return
	}
	f, err := s.Root.Open(name)
	if err != nil {
		c.WriteTo(errorPacket(errNotFound, "file not found"), peer)
		s.logf("tftp: %s: %q not found", peer, r.file)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		c.WriteTo(errorPacket(errNotFound, "file not found"), peer)
		return
	}
	t := &xfer{c: c, peer: peer, timeout: s.Timeout, blksize: r.blksize}
	if r.timeout > 0 {
		t.timeout = r.timeout
	}
	if t.timeout <= 0 {
		t.timeout = defaultTimeout
	}
	start := time.Now()
	if fi.Size() == 0 {
		// curl takes "tsize 0" for a broken server: leave the option
		// out (a server may decline any option).
		r.oack = dropOption(r.oack, "tsize")
	}
	if len(r.oack) > 0 {
		oack := []byte{0, opOACK}
		for i := 0; i < len(r.oack); i += 2 {
			v := r.oack[i+1]
			if r.oack[i] == "tsize" {
				v = strconv.FormatInt(fi.Size(), 10)
			}
			oack = append(oack, r.oack[i]...)
			oack = append(oack, 0)
			oack = append(oack, v...)
			oack = append(oack, 0)
		}
		// The client acknowledges an OACK with ACK 0.
		if err := t.send(ctx, oack, 0); err != nil {
			s.logf("tftp: %s: %q: %v", peer, r.file, err)
			return
		}
	}
	if err := t.sendFile(ctx, f); err != nil {
		s.logf("tftp: %s: %q: %v", peer, r.file, err)
		return
	}
	s.logf("tftp: %s: sent %q (%d bytes, block size %d) in %.2f s", peer, r.file, fi.Size(), t.blksize, time.Since(start).Seconds())
}

func dropOption(opts []string, name string) []string {
	var out []string
	for i := 0; i+1 < len(opts); i += 2 {
		if opts[i] != name {
			out = append(out, opts[i], opts[i+1])
		}
	}
	return out
}

type xfer struct {
	c       *net.UDPConn
	peer    net.Addr
	timeout time.Duration
	blksize int
	in      [1500]byte
}

// send sends p and waits for the ACK of block, sending again on timeout.
func (t *xfer) send(ctx context.Context, p []byte, block uint16) error {
	for try := 0; try < retries; try++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := t.c.WriteTo(p, t.peer); err != nil {
			return err
		}
		deadline := time.Now().Add(t.timeout)
		for {
			t.c.SetReadDeadline(deadline)
			n, from, err := t.c.ReadFrom(t.in[:])
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // send again
				}
				return err
			}
			if from.String() != t.peer.String() {
				// Another host or port: not this transfer (RFC 1350 sec. 4).
				t.c.WriteTo(errorPacket(5, "unknown transfer id"), from)
				continue
			}
			if n < 4 {
				continue
			}
			switch binary.BigEndian.Uint16(t.in[:]) {
			case opACK:
				if binary.BigEndian.Uint16(t.in[2:]) == block {
					return nil
				}
				// A duplicate ACK of an earlier block: ignore it, never
				// answer it (the sorcerer's apprentice bug).
			case opERROR:
				return fmt.Errorf("client ended the transfer: %s", strings.TrimRight(string(t.in[4:n]), "\x00"))
			}
		}
	}
	return fmt.Errorf("no ACK of block %d after %d tries", block, retries)
}

func (t *xfer) sendFile(ctx context.Context, r io.Reader) error {
	p := make([]byte, 4+t.blksize)
	binary.BigEndian.PutUint16(p, opDATA)
	for block := uint16(1); ; block++ { // wraps past 65535, as most clients expect
		n, err := io.ReadFull(r, p[4:])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			t.c.WriteTo(errorPacket(errNotDefined, "read error"), t.peer)
			return err
		}
		binary.BigEndian.PutUint16(p[2:], block)
		if err := t.send(ctx, p[:4+n], block); err != nil {
			return err
		}
		if n < t.blksize {
			return nil // a short block (maybe empty) ends the transfer
		}
	}
}
