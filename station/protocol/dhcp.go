package protocol

import "errors"

// How a unit finds its station by DHCP: a client whose vendor class
// (option 60) starts with VendorClass gets, in option 43 (vendor-specific
// information), sub-option 1 holding the station's base URL. A unit
// without it uses http://SERVER-IDENTIFIER (option 54).
const (
	VendorClass         = "lifeboat"
	OptionStationURL    = 1
	errStationURLFormat = "protocol: option 43 holds no station URL"
)

// EncodeStationOption returns option 43's content for a station URL.
func EncodeStationOption(url string) []byte {
	if len(url) > 255 {
		url = url[:255]
	}
	return append([]byte{OptionStationURL, byte(len(url))}, url...)
}

// DecodeStationOption finds the station URL in option 43's content.
func DecodeStationOption(b []byte) (string, error) {
	for len(b) >= 2 {
		code, n := b[0], int(b[1])
		if code == 255 || len(b) < 2+n {
			break
		}
		if code == OptionStationURL && n > 0 {
			return string(b[2 : 2+n]), nil
		}
		b = b[2+n:]
	}
	return "", errors.New(errStationURLFormat)
}
