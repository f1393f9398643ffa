package station

import "github.com/lifeboat-updater/lifeboat/station/protocol"

func protocolReport(pass bool) protocol.Report {
	r := protocol.Report{Pass: pass, ReadBack: protocol.ReadBackPass}
	if !pass {
		r.Reason, r.ReadBack = "second report", protocol.ReadBackFail
	}
	return r
}
