package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// decodeStrict decodes the JSON object b into v (a pointer to a struct)
// more strictly than encoding/json does, so that every reader of a signed
// manifest sees the same thing a trusted key signed:
//
//   - b is valid UTF-8 (encoding/json would replace bad bytes with U+FFFD);
//   - b holds one JSON value and nothing after it but whitespace;
//   - no object has the same key twice (encoding/json keeps the last, other
//     parsers the first);
//   - keys match the struct fields' JSON names exactly, case included
//     (encoding/json also takes "Image" for "image");
//   - with strictFields, a key that names no field is an error;
//   - the document holds at most maxValues values, so that a small
//     document cannot make the decoder allocate far more than its size
//     (each "{}" of a list becomes a struct of a hundred bytes).
//
// JSON types that do not fit the Go types are left to encoding/json, which
// refuses them.
func decodeStrict(b []byte, v any, maxValues int, strictFields bool) error {
	if !utf8.Valid(b) {
		return errors.New("not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	w := walker{d: d, budget: maxValues, strictFields: strictFields}
	if err := w.value(reflect.TypeOf(v).Elem(), ""); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON object at byte %d", d.InputOffset())
	}
	return json.Unmarshal(b, v)
}

type walker struct {
	d            *json.Decoder
	budget       int
	strictFields bool
}

// value reads one JSON value that decodes into t; path names it in errors.
func (w *walker) value(t reflect.Type, path string) error {
	if w.budget--; w.budget < 0 {
		return errors.New("too many values")
	}
	tok, err := w.d.Token()
	if err != nil {
		return syntaxError(err)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch tok {
	case json.Delim('{'):
		switch t.Kind() {
		case reflect.Struct:
			return w.object(path, func(key string) (reflect.Type, error) {
				ft, ok := jsonFields(t)[key]
				if !ok {
					if w.strictFields {
						return nil, fmt.Errorf("%s: unknown field %q", where(path), clip(key, 200))
					}
					return nil, nil
				}
				return ft, nil
			})
		case reflect.Map:
			return w.object(path, func(string) (reflect.Type, error) { return t.Elem(), nil })
		}
		return w.skip(path, tok.(json.Delim))
	case json.Delim('['):
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i := 0; w.d.More(); i++ {
				if err := w.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
			_, err := w.d.Token()
			return syntaxError(err)
		}
		return w.skip(path, tok.(json.Delim))
	}
	return nil
}

// object reads the keys and values of an object whose '{' has been read.
// field gives the type of a key's value; nil means a value to skip.
func (w *walker) object(path string, field func(key string) (reflect.Type, error)) error {
	seen := map[string]bool{}
	for w.d.More() {
		tok, err := w.d.Token()
		if err != nil {
			return syntaxError(err)
		}
		key := tok.(string) // the decoder allows only strings here
		if seen[key] {
			return fmt.Errorf("%s: key %q appears twice", where(path), clip(key, 200))
		}
		seen[key] = true
		ft, err := field(key)
		if err != nil {
			return err
		}
		sub := path + "." + key
		if ft == nil {
			if err := w.skipValue(sub); err != nil {
				return err
			}
			continue
		}
		if err := w.value(ft, sub); err != nil {
			return err
		}
	}
	_, err := w.d.Token()
	return syntaxError(err)
}

// skipValue reads one value of no known type.
func (w *walker) skipValue(path string) error {
	if w.budget--; w.budget < 0 {
		return errors.New("too many values")
	}
	tok, err := w.d.Token()
	if err != nil {
		return syntaxError(err)
	}
	if tok == json.Delim('{') || tok == json.Delim('[') {
		return w.skip(path, tok.(json.Delim))
	}
	return nil
}

// skip reads the rest of the object or array that open began, still
// refusing repeated keys and counting values. It is for values whose JSON
// type does not fit the Go type, which encoding/json then refuses, and
// for the fields that are ignored.
func (w *walker) skip(path string, open json.Delim) error {
	type level struct {
		seen map[string]bool // nil in an array
		key  bool            // the next token of an object is a key
	}
	push := func(d json.Delim) level {
		if d == '{' {
			return level{seen: map[string]bool{}, key: true}
		}
		return level{}
	}
	levels := []level{push(open)}
	for len(levels) > 0 {
		if len(levels) > maxDepth {
			return fmt.Errorf("%s: nested too deep", where(path))
		}
		tok, err := w.d.Token()
		if err != nil {
			return syntaxError(err)
		}
		top := &levels[len(levels)-1]
		if tok == json.Delim('}') || tok == json.Delim(']') {
			levels = levels[:len(levels)-1]
			if n := len(levels); n > 0 && levels[n-1].seen != nil {
				levels[n-1].key = true
			}
			continue
		}
		if top.key {
			k := tok.(string) // the decoder allows only strings here
			if top.seen[k] {
				return fmt.Errorf("%s: key %q appears twice", where(path), clip(k, 200))
			}
			top.seen[k] = true
			top.key = false
			continue
		}
		if w.budget--; w.budget < 0 {
			return errors.New("too many values")
		}
		if d, ok := tok.(json.Delim); ok {
			levels = append(levels, push(d))
			continue
		}
		if top.seen != nil {
			top.key = true
		}
	}
	return nil
}

// maxDepth bounds the nesting of ignored values.
const maxDepth = 32

// where names a place in a document for an error. The keys in it come
// from the document: they are escaped and cut short.
func where(path string) string {
	if path == "" {
		return "top level"
	}
	return Printable(clip(strings.TrimPrefix(path, "."), 200))
}

// syntaxError passes the decoder's error on; the end of input inside a
// value is an incomplete document, not the end of a stream.
func syntaxError(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields maps the JSON names of a struct's fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	fieldCache.Store(t, m)
	return m
}
