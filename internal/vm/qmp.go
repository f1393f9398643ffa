package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrQMP reports an error answer from QEMU's machine protocol.
var ErrQMP = errors.New("vm: qmp")

type qmpConn struct {
	c net.Conn
	r *bufio.Reader
}

func (q *qmpConn) close() { q.c.Close() }

// QMP runs a QEMU machine protocol command (see QEMU's QMP reference) and
// returns its "return" value. args may be nil.
func (v *VM) QMP(command string, args any) (json.RawMessage, error) {
	select {
	case <-v.done:
		return nil, ErrExited
	default:
	}
	v.qmpMu.Lock()
	defer v.qmpMu.Unlock()
	if v.qmp == nil {
		q, err := dialQMP(v.qmpPath)
		if err != nil {
			return nil, err
		}
		v.qmp = q
	}
	ret, err := v.qmp.do(command, args)
	if err != nil && !errors.Is(err, ErrQMP) {
		// A broken connection: dial again next time.
		v.qmp.close()
		v.qmp = nil
	}
	return ret, err
}

func dialQMP(path string) (*qmpConn, error) {
	var c net.Conn
	var err error
	// QEMU makes the socket shortly after it starts.
	for range 50 {
		if c, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("vm: qmp: %w", err)
	}
	q := &qmpConn{c: c, r: bufio.NewReader(c)}
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := q.read(&greeting); err != nil || greeting.QMP == nil {
		c.Close()
		return nil, fmt.Errorf("vm: qmp greeting: %w", err)
	}
	if _, err := q.do("qmp_capabilities", nil); err != nil {
		c.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpConn) read(v any) error {
	q.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

func (q *qmpConn) do(command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := q.c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	for {
		var resp struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			Event string `json:"event"`
		}
		if err := q.read(&resp); err != nil {
			return nil, err
		}
		switch {
		case resp.Event != "":
			continue // asynchronous events are not answers
		case resp.Error != nil:
			return nil, fmt.Errorf("%w: %s: %s: %s", ErrQMP, command, resp.Error.Class, resp.Error.Desc)
		default:
			return resp.Return, nil
		}
	}
}

// SendKey presses keys together and releases them, as QEMU qcodes: "ctrl",
// "alt", "delete", "a", "ret", "f2".
func (v *VM) SendKey(keys ...string) error {
	type key struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}
	ks := make([]key, len(keys))
	for i, k := range keys {
		ks[i] = key{"qcode", k}
	}
	_, err := v.QMP("send-key", map[string]any{"keys": ks})
	return err
}

// Reset resets the guest, like a reset button.
func (v *VM) Reset() error {
	_, err := v.QMP("system_reset", nil)
	return err
}

// Status returns QEMU's run state ("running", "paused", "shutdown", ...).
func (v *VM) Status() (string, error) {
	ret, err := v.QMP("query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(ret, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}
