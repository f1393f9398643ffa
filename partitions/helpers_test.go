package partitions

import (
	"encoding/binary"
	"hash/crc32"
)

func putLE32(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
func crc32IEEE(b []byte) uint32  { return crc32.ChecksumIEEE(b) }
