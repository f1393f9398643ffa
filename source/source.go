// Package source finds and opens an update bundle: a local file, an HTTP or
// HTTPS URL, or a bundle on removable media (USB stick, SD card).
//
// Every source yields a Stream, one continuous io.ReadCloser of the bundle
// file, whatever happens underneath: an HTTP download that drops is resumed
// with a Range request, and the caller never sees the seam. Sources that
// can also read at offsets (file, HTTP with Range, media) implement
// RandomAccess, so that an install can fetch only the chunks it needs.
//
// A device names its sources in order in a spec string such as
// "http://10.0.0.1/b.lfb,usb,file:/data/b.lfb" (see ParseSpec); the kernel
// command line's lifeboat.url= replaces it (see SpecFromCmdline), and
// OpenFirst tries the list, round after round, until one opens.
//
// Nothing here verifies the bundle: that is the bundle package's job, and
// it must be done on whatever a source yields.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
)

// Stream is an open bundle, read front to back.
type Stream struct {
	io.ReadCloser
	// Size is the bundle's length in bytes, or -1 when unknown.
	Size int64
	// Name says where the bytes come from, for messages.
	Name string
}

// ReaderAt is an open bundle read at offsets. ReadAt may be called from
// several goroutines at once.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	// Size is the bundle's length in bytes.
	Size() int64
}

// Source is a place a bundle may be found.
type Source interface {
	// Open opens the bundle as a stream. ctx bounds the opening and all
	// later reads: cancelling it aborts a download.
	Open(ctx context.Context) (*Stream, error)
	// String names the source for messages (URLs without passwords).
	String() string
}

// RandomAccess is implemented by sources that can read at offsets.
type RandomAccess interface {
	// OpenReaderAt opens the bundle for random access; ctx bounds all
	// reads as for Open.
	OpenReaderAt(ctx context.Context) (ReaderAt, error)
}

// File is a bundle in a local file (or a block device).
type File struct {
	Path string
}

func (f *File) String() string { return "file:" + f.Path }

// Open opens the file; a missing file is ErrNotFound.
func (f *File) Open(ctx context.Context) (*Stream, error) {
	r, err := f.open()
	if err != nil {
		return nil, err
	}
	return &Stream{ReadCloser: r, Size: r.size, Name: f.Path}, nil
}

// OpenReaderAt opens the file for random access.
func (f *File) OpenReaderAt(ctx context.Context) (ReaderAt, error) {
	return f.open()
}

func (f *File) open() (*osFile, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("source: %w", err)
	}
	size, err := fh.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = fh.Seek(0, io.SeekStart)
	}
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("source: %w", err)
	}
	return &osFile{File: fh, size: size}, nil
}

// osFile is an *os.File with its size (found by seeking, so that block
// devices have one too) and an optional cleanup after Close.
type osFile struct {
	*os.File
	size    int64
	cleanup func() error
}

func (f *osFile) Size() int64 { return f.size }

func (f *osFile) Close() error {
	err := f.File.Close()
	if f.cleanup != nil {
		if cerr := f.cleanup(); err == nil {
			err = cerr
		}
		f.cleanup = nil
	}
	return err
}

// Options are shared by the sources ParseSpec makes.
type Options struct {
	// Client is used by HTTP sources; nil means NewClient(ClientConfig{})
	// at parse time.
	Client *Client
	// Retry is the HTTP sources' backoff (see HTTP.Retry).
	Retry Backoff
	// Media configures the "usb" source.
	Media Media
	// Logf, if not nil, receives progress lines from the sources.
	Logf func(format string, args ...any)
}

// ParseSpec turns a comma-separated list of sources into Sources, in order:
//
//	http://host/path, https://host/path   an HTTP(S) URL
//	file:/path, file:///path, /path       a local file
//	usb, media                            removable media (see Media)
//
// Spaces around items and empty items are ignored.
func ParseSpec(spec string, opts Options) ([]Source, error) {
	var out []Source
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		s, err := parseItem(item, &opts)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q names no source", ErrSpec, spec)
	}
	return out, nil
}

func parseItem(item string, opts *Options) (Source, error) {
	switch strings.ToLower(item) {
	case "usb", "media":
		m := opts.Media
		if m.Logf == nil {
			m.Logf = opts.Logf
		}
		return &m, nil
	}
	if strings.HasPrefix(item, "/") {
		return &File{Path: item}, nil
	}
	u, err := url.Parse(item)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrSpec, item, err)
	}
	switch u.Scheme {
	case "file":
		p := u.Path
		if p == "" {
			p = u.Opaque
		}
		if p == "" || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("%w: %q: want file:/path", ErrSpec, item)
		}
		return &File{Path: p}, nil
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%w: %q has no host", ErrSpec, item)
		}
		if opts.Client == nil {
			c, err := NewClient(ClientConfig{Logf: opts.Logf})
			if err != nil {
				return nil, err
			}
			opts.Client = c
		}
		return &HTTP{URL: item, Client: opts.Client, Retry: opts.Retry, Logf: opts.Logf}, nil
	}
	return nil, fmt.Errorf("%w: %q: unknown kind (want http://, https://, file:, usb)", ErrSpec, item)
}

// SpecFromCmdline returns the value of lifeboat.url= in a kernel command
// line (the last one wins), or spec when there is none: the command line
// overrides the configured list.
func SpecFromCmdline(cmdline, spec string) string {
	for _, arg := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(arg, "lifeboat.url="); ok {
			spec = strings.Trim(v, `"`)
		}
	}
	return spec
}
