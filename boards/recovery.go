package boards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
)

// Recovery is the contract between a board's bootloader and its rescue:
// which bootloader environment variables say why the rescue runs, and
// which the rescue changes when it installs.
//
//   - Marker is the transaction marker. The rescue sets it to MarkerValue
//     before its first write to anything the bootloader boots and clears
//     it only after every step verified; a bootloader that finds it set
//     boots the rescue, so a power cut at any moment ends in the rescue
//     again, which finishes the job.
//   - Counter counts boots of the production system that did not (yet)
//     mark themselves good: the bootloader advances it before each boot,
//     production resets it once it works. Past its limit the bootloader
//     boots the rescue. After a good install the rescue resets it.
//   - State names the targets a factory reset wipes: the device's own data,
//     never the operating system.
//
// A preset fills in a known scheme; fields set next to it win.
type Recovery struct {
	// Preset is "swupdate", "mender", "rauc" or "grub" (see Presets).
	Preset string `json:"preset,omitempty"`
	// BootEnv is the profile's bootenv entry holding the variables; empty
	// means the profile's only one.
	BootEnv string `json:"bootenv,omitempty"`

	// Marker is the transaction marker's variable; MarkerValue its value
	// while a rescue install runs (default "1"); MarkerClear its value
	// afterwards (empty: the variable is removed).
	Marker      string `json:"marker,omitempty"`
	MarkerValue string `json:"marker_value,omitempty"`
	MarkerClear string `json:"marker_clear,omitempty"`

	// Counter is the boot counter's variable. Counting up (the default),
	// boots have failed once it is above the limit; with CountDown it
	// holds the boots left and has run out at 0 (RAUC's BOOT_x_LEFT).
	Counter   string `json:"counter,omitempty"`
	CountDown bool   `json:"count_down,omitempty"`
	// LimitVar is a variable holding the limit (U-Boot's bootlimit); when
	// it is set in the environment it wins over Limit.
	LimitVar string `json:"limit_var,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	// CounterReset is the counter's value after a good install; default
	// "0" counting up, the limit counting down.
	CounterReset string `json:"counter_reset,omitempty"`
	// ExceedOnBegin is for bootloaders that go to the rescue on the
	// counter only, whatever the marker says (Mender's U-Boot
	// integration): with the marker, the rescue then also puts the
	// counter past its limit, so that a power cut during the install
	// boots the rescue at once and not the half-written system.
	ExceedOnBegin bool `json:"exceed_on_begin,omitempty"`

	// OnSuccess are more variables set after a good install; an empty
	// value removes the variable.
	OnSuccess map[string]string `json:"on_success,omitempty"`

	// SecurityVersion is a variable keeping the device's security
	// version (anti-rollback) across rescue boots, for boards whose
	// rescue has no writable file system of its own.
	SecurityVersion string `json:"security_version,omitempty"`

	// State are the targets (profile targets or partition names) a
	// factory reset wipes.
	State []string `json:"state,omitempty"`

	// Button is the board's recovery button, read at power-on.
	Button *Button `json:"button,omitempty"`
}

// Button is a key held at power-on. A short hold asks for a reinstall, a
// hold of LongSeconds or more for a factory reset.
type Button struct {
	// Input is the Linux input device (evdev) or a glob of them; default
	// "/dev/input/event*".
	Input string `json:"input,omitempty"`
	// Key is the key code: a number (linux/input-event-codes.h) or one of
	// the names KeyCodes knows ("KEY_ESC", "BTN_0", ...).
	Key string `json:"key,omitempty"`
	// GPIO is a GPIO line instead of a key: "gpiochip0:17".
	GPIO string `json:"gpio,omitempty"`
	// ActiveLow says the GPIO line reads 0 while pressed.
	ActiveLow bool `json:"active_low,omitempty"`
	// LongSeconds is the hold that means factory reset; default 5.
	LongSeconds float64 `json:"long_seconds,omitempty"`
	// WaitSeconds is how long the rescue looks for the input device to
	// appear (its driver may probe late); default 2.
	WaitSeconds float64 `json:"wait_seconds,omitempty"`
}

// Presets are the ready-made schemes a Recovery's Preset names.
//
//   - swupdate: SWUpdate's recovery_status=in_progress marker (removed
//     on success, as SWUpdate does), ustate=1 ("installed") afterwards,
//     U-Boot's bootcount/bootlimit.
//   - mender: Mender's U-Boot integration: upgrade_available=1 while
//     installing, 0 afterwards; bootcount/bootlimit, put past the limit
//     while installing (ExceedOnBegin).
//   - rauc: a RAUC-style U-Boot script: BOOT_A_LEFT counts the boots left
//     (3), lifeboat_transaction marks an unfinished install.
//   - grub: the GRUB boot counting of the demo device (demo/grub.go):
//     boot_count above boot_limit, lifeboat_transaction.
//
// What the bootloader does with them, in U-Boot's script language (the
// counter advanced by U-Boot's bootcount driver or the script):
//
//	swupdate: if test "${recovery_status}" = in_progress || test ${bootcount} -gt ${bootlimit}; then run rescue; fi
//	mender:   if test "${upgrade_available}" = 1 && test ${bootcount} -gt ${bootlimit}; then run altbootcmd; fi
//	          (altbootcmd boots the rescue; a plain Mender setup swaps partitions there instead)
//	rauc:     if test "${lifeboat_transaction}" = 1; then run rescue; fi
//	          if test ${BOOT_A_LEFT} -gt 0; then setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1; saveenv; run boot_a; fi
//	          run rescue
var Presets = map[string]Recovery{
	"swupdate": {
		Marker: "recovery_status", MarkerValue: "in_progress",
		Counter: "bootcount", LimitVar: "bootlimit", Limit: 3,
		OnSuccess: map[string]string{"ustate": "1"},
	},
	"mender": {
		Marker: "upgrade_available", MarkerValue: "1", MarkerClear: "0",
		Counter: "bootcount", LimitVar: "bootlimit", Limit: 3, ExceedOnBegin: true,
	},
	"rauc": {
		Marker: "lifeboat_transaction", MarkerValue: "1",
		Counter: "BOOT_A_LEFT", CountDown: true, Limit: 3,
		OnSuccess: map[string]string{"BOOT_ORDER": "A"},
	},
	"grub": {
		Marker: "lifeboat_transaction", MarkerValue: "1",
		Counter: "boot_count", LimitVar: "boot_limit", Limit: 3,
	},
}

// Resolved returns r with its preset filled in and the defaults applied.
func (r Recovery) Resolved() (Recovery, error) {
	out := r
	if r.Preset != "" {
		p, ok := Presets[r.Preset]
		if !ok {
			return r, fmt.Errorf("%w: recovery preset %q (want %s)", ErrInvalid, r.Preset, strings.Join(sortedKeys(Presets), ", "))
		}
		out = p
		out.Preset, out.BootEnv, out.State, out.Button = r.Preset, r.BootEnv, r.State, r.Button
		if r.SecurityVersion != "" {
			out.SecurityVersion = r.SecurityVersion
		}
		for _, f := range []struct {
			dst *string
			src string
		}{
			{&out.Marker, r.Marker}, {&out.MarkerValue, r.MarkerValue}, {&out.MarkerClear, r.MarkerClear},
			{&out.Counter, r.Counter}, {&out.LimitVar, r.LimitVar}, {&out.CounterReset, r.CounterReset},
		} {
			if f.src != "" {
				*f.dst = f.src
			}
		}
		if r.Limit != 0 {
			out.Limit = r.Limit
		}
		if r.CountDown {
			out.CountDown = true
		}
		if r.ExceedOnBegin {
			out.ExceedOnBegin = true
		}
		if r.OnSuccess != nil {
			out.OnSuccess = maps.Clone(p.OnSuccess)
			if out.OnSuccess == nil {
				out.OnSuccess = map[string]string{}
			}
			maps.Copy(out.OnSuccess, r.OnSuccess)
		}
	}
	if out.Marker != "" && out.MarkerValue == "" {
		out.MarkerValue = "1"
	}
	if out.MarkerValue == out.MarkerClear && out.Marker != "" {
		return r, fmt.Errorf("%w: recovery marker %q: the same value %q set and cleared", ErrInvalid, out.Marker, out.MarkerValue)
	}
	if out.Limit < 0 {
		return r, fmt.Errorf("%w: recovery limit %d", ErrInvalid, out.Limit)
	}
	if out.CounterReset == "" && out.Counter != "" {
		out.CounterReset = "0"
		if out.CountDown {
			out.CounterReset = strconv.Itoa(max(out.Limit, 1))
		}
	}
	for _, s := range out.State {
		if s == "" {
			return r, fmt.Errorf("%w: recovery state: empty target name", ErrInvalid)
		}
	}
	if b := out.Button; b != nil {
		bb := *b
		switch {
		case bb.Key == "" && bb.GPIO == "":
			return r, fmt.Errorf("%w: recovery button needs a key or a gpio", ErrInvalid)
		case bb.Key != "" && bb.GPIO != "":
			return r, fmt.Errorf("%w: recovery button: key and gpio exclude each other", ErrInvalid)
		case bb.LongSeconds < 0 || bb.WaitSeconds < 0:
			return r, fmt.Errorf("%w: recovery button: negative time", ErrInvalid)
		}
		if bb.Key != "" {
			if _, err := KeyCode(bb.Key); err != nil {
				return r, err
			}
		}
		if bb.GPIO != "" {
			if _, _, err := bb.GPIOLine(); err != nil {
				return r, err
			}
		}
		if bb.Input == "" {
			bb.Input = "/dev/input/event*"
		}
		if bb.LongSeconds == 0 {
			bb.LongSeconds = 5
		}
		if bb.WaitSeconds == 0 {
			bb.WaitSeconds = 2
		}
		out.Button = &bb
	}
	return out, nil
}

// RecoveryEnv returns the name of the bootenv entry the recovery
// variables live in.
func (p *Profile) RecoveryEnv() (string, error) {
	name := ""
	if p.Recovery != nil {
		name = p.Recovery.BootEnv
	}
	if name != "" {
		if _, ok := p.BootEnv[name]; !ok {
			return "", fmt.Errorf("%w: recovery bootenv %q is not in bootenv", ErrInvalid, name)
		}
		return name, nil
	}
	if len(p.BootEnv) != 1 {
		return "", fmt.Errorf("%w: recovery: %d bootenv entries, name one with recovery.bootenv", ErrInvalid, len(p.BootEnv))
	}
	for n := range p.BootEnv {
		name = n
	}
	return name, nil
}

// GPIOLine splits GPIO into its chip and line offset.
func (b Button) GPIOLine() (chip string, line int, err error) {
	c, l, ok := strings.Cut(b.GPIO, ":")
	n, perr := strconv.Atoi(l)
	if !ok || c == "" || perr != nil || n < 0 {
		return "", 0, fmt.Errorf("%w: recovery button gpio %q, want CHIP:LINE", ErrInvalid, b.GPIO)
	}
	return c, n, nil
}

// keyCodes are names of the keys and buttons a board's recovery button is
// likely to be (linux/input-event-codes.h).
var keyCodes = map[string]int{
	"KEY_ESC": 1, "KEY_ENTER": 28, "KEY_SPACE": 57, "KEY_F1": 59, "KEY_F2": 60,
	"KEY_F10": 68, "KEY_F12": 88, "KEY_R": 19, "KEY_HOME": 102,
	"KEY_POWER": 116, "KEY_RESTART": 0x198, "KEY_VENDOR": 0xd8,
	"KEY_PROG1": 148, "KEY_PROG2": 149, "KEY_SETUP": 141,
	"BTN_0": 0x100, "BTN_1": 0x101, "BTN_2": 0x102, "BTN_3": 0x103,
	"BTN_MISC": 0x100, "BTN_TRIGGER_HAPPY1": 0x2c0,
}

// KeyCode returns the Linux key code a Button.Key names.
func KeyCode(s string) (int, error) {
	if n, err := strconv.ParseInt(s, 0, 32); err == nil && n >= 0 && n < 0x300 {
		return int(n), nil
	}
	if n, ok := keyCodes[strings.ToUpper(s)]; ok {
		return n, nil
	}
	names := make([]string, 0, len(keyCodes))
	for k := range keyCodes {
		names = append(names, k)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("%w: recovery button key %q (a number below 0x300, or one of %s)", ErrInvalid, s, strings.Join(names, ", "))
}

// UnmarshalJSON decodes a recovery section strictly (unknown keys are
// errors, as everywhere in a profile) and checks it (Resolved), so that a
// bad section is found when the profile is parsed. Whether its bootenv
// entry exists is checked where it is used (Profile.RecoveryEnv).
func (r *Recovery) UnmarshalJSON(b []byte) error {
	type plain Recovery
	var p plain
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return err
	}
	if _, err := Recovery(p).Resolved(); err != nil {
		return err
	}
	*r = Recovery(p)
	return nil
}
