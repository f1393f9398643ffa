package bundle

import "errors"

// Errors returned by this package. Compare with errors.Is: they are wrapped
// with the context (chunk, image, offset) that a person needs.
var (
	// ErrFormat means the bytes are not a bundle this package understands:
	// bad magic, unknown format version, an inconsistent manifest or index.
	ErrFormat = errors.New("bundle: malformed bundle")

	// ErrTruncated means the bundle ended before all of it was read.
	ErrTruncated = errors.New("bundle: truncated")

	// ErrUnknownKey means no signature on the manifest was made by a key in
	// the trust store.
	ErrUnknownKey = errors.New("bundle: not signed by a trusted key")

	// ErrSignature means a signature made by a trusted key does not verify:
	// the manifest was changed after it was signed.
	ErrSignature = errors.New("bundle: signature does not verify")

	// ErrChecksum means a chunk's content does not match the hash that the
	// signed manifest gives for it.
	ErrChecksum = errors.New("bundle: chunk checksum mismatch")

	// ErrOrder means a streaming Reader was asked for data behind its
	// current position.
	ErrOrder = errors.New("bundle: read behind the stream position")

	// ErrWriteAfterClose is returned by Writer methods after Close.
	ErrWriteAfterClose = errors.New("bundle: write after close")
)
