package stationtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/station/client"
	"github.com/lifeboat-updater/lifeboat/station/protocol"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Unit is a simulated board: it goes through a factory run as the rescue
// will (announce, identity, bundle, install events, unit data, report),
// over the real protocol.
type Unit struct {
	Board    string
	Revision string
	Hardware unitdata.Hardware
	// Steps is how many install steps it reports, each with Progress
	// progress events (defaults 2 and 4).
	Steps, Progress int
	// Fail, when set, is the reason the run fails (read-back fails).
	Fail string
	// Stations is the station trust store; nil skips the unit data
	// check (load tests).
	Stations *bundle.TrustStore
	// BundleTrust verifies the served bundle; nil: the bundle is not
	// downloaded (load tests).
	BundleTrust *bundle.TrustStore
	// Pause, when set, is called between stages ("identity", "events",
	// "unit-data", "report") and may block: a test kills the station
	// there.
	Pause func(stage string)
	// StepDelay is slept between progress events, so a page shows them.
	StepDelay time.Duration
	// Wait is told every retry.
	Wait func(err error, next time.Duration)
}

// Result is what a run ended with.
type Result struct {
	Announce *protocol.AnnounceReply
	Identity *protocol.Identity
	Plan     *unitdata.Plan
	Data     *unitdata.Data
	Reply    *protocol.ReportReply
	Events   int
}

func (u *Unit) pause(stage string) {
	if u.Pause != nil {
		u.Pause(stage)
	}
}

// Run goes through one run against the station at c. Every call retries
// until the station answers (it may be restarting) or refuses.
func (u *Unit) Run(ctx context.Context, c *client.Client) (*Result, error) {
	if u.Steps == 0 {
		u.Steps = 2
	}
	if u.Progress == 0 {
		u.Progress = 4
	}
	var res Result
	retry := func(f func(context.Context) error) error { return client.Retry(ctx, f, u.Wait) }
	err := retry(func(ctx context.Context) (err error) {
		res.Announce, err = c.Announce(ctx, protocol.Announce{Board: u.Board, Revision: u.Revision, Hardware: u.Hardware, Rescue: "test"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	run := res.Announce.Run
	u.pause("identity")
	if err := retry(func(ctx context.Context) (err error) {
		res.Identity, err = c.Identity(ctx, run)
		return err
	}); err != nil {
		return &res, fmt.Errorf("identity: %w", err)
	}
	var manifest *bundle.Manifest
	if u.BundleTrust != nil {
		if err := retry(func(ctx context.Context) (err error) {
			manifest, err = fetchManifest(ctx, res.Announce.Bundle.URL, u.BundleTrust)
			return err
		}); err != nil {
			return &res, fmt.Errorf("bundle: %w", err)
		}
	}
	u.pause("events")
	log := c.NewLog(run)
	obs := install.JSONLines(log)
	now := time.Now()
	obs(install.Event{Type: install.EventPlan, Time: now, Plan: &install.PlanInfo{Board: u.Board}})
	var steps []protocol.StepResult
	for s := 1; s <= u.Steps; s++ {
		start := time.Now()
		obs(install.Event{Type: install.EventStepStart, Time: start, Step: &install.StepInfo{Step: s, Steps: u.Steps, Type: "image", Target: "rootfs", Bytes: 1 << 20}})
		for p := 1; p <= u.Progress; p++ {
			if u.StepDelay > 0 {
				time.Sleep(u.StepDelay)
			}
			done := int64(p) << 20 / int64(u.Progress)
			obs(install.Event{Type: install.EventProgress, Time: time.Now(), Progress: &install.Progress{Step: s, Steps: u.Steps,
				DoneBytes: done, TotalBytes: 1 << 20, WrittenBytes: done, Percent: 100 * float64(p) / float64(u.Progress)}})
			// Flushing is best effort: what is not acknowledged goes
			// with the report.
			log.Flush(ctx)
		}
		obs(install.Event{Type: install.EventStepDone, Time: time.Now(), StepDone: &install.StepStats{Step: s, Steps: u.Steps, Type: "image",
			Target: "rootfs", WrittenBytes: 1 << 20, Verified: true, Seconds: time.Since(start).Seconds()}})
		steps = append(steps, protocol.StepResult{Step: s, Name: "image rootfs", Result: "ok", Seconds: time.Since(start).Seconds()})
	}
	obs(install.Event{Type: install.EventDone, Time: time.Now(), Done: &install.DoneInfo{Steps: u.Steps, Seconds: time.Since(now).Seconds()}})
	log.Flush(ctx)
	u.pause("unit-data")
	var signed []byte
	if err := retry(func(ctx context.Context) (err error) {
		signed, err = c.UnitData(ctx, run)
		return err
	}); err != nil {
		return &res, fmt.Errorf("unit data: %w", err)
	}
	if u.Stations != nil {
		d, _, err := unitdata.Verify(signed, u.Stations)
		if err != nil {
			return &res, err
		}
		res.Data = d
		if manifest != nil {
			if res.Plan, err = unitdata.Apply(d, manifest, u.Hardware); err != nil {
				return &res, err
			}
		}
	}
	u.pause("report")
	rep := protocol.Report{Pass: u.Fail == "", Reason: u.Fail, ReadBack: protocol.ReadBackPass, Steps: steps,
		Seconds: time.Since(now).Seconds(), Events: log.Unsent()}
	if u.Fail != "" {
		rep.ReadBack = protocol.ReadBackFail
	}
	res.Events = log.Len()
	if err := retry(func(ctx context.Context) (err error) {
		res.Reply, err = c.Report(ctx, run, rep)
		return err
	}); err != nil {
		return &res, fmt.Errorf("report: %w", err)
	}
	return &res, nil
}

// fetchManifest downloads the served bundle and verifies all of it, as
// the rescue does before installing.
func fetchManifest(ctx context.Context, url string, trust *bundle.TrustStore) (*bundle.Manifest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	br, err := bundle.NewReader(bytes.NewReader(b), trust)
	if err != nil {
		return nil, err
	}
	// Read every image: the whole bundle must verify.
	for {
		if _, err := br.Next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, br); err != nil {
			return nil, err
		}
	}
	return br.Manifest(), nil
}
