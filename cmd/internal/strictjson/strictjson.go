// Package strictjson decodes the files the program reads (config.json, the
// state file) the strict way: one object, no unknown fields, nothing after
// it, and errors worded for the person who edits the file.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Decode decodes data, which must hold one JSON object, into v. It rejects
// unknown fields and anything after the object, and rewords the decoder's
// errors for people: a type error starts with the field it is about, a
// syntax error says where it is as a line and column.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(data, err)
	}
	// Decode stops after the first value; a second one is most likely a
	// botched edit, and ignoring it would ignore settings the user meant.
	end := dec.InputOffset()
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		extra := len(data[end:]) - len(bytes.TrimLeft(data[end:], " \t\r\n"))
		return fmt.Errorf("unexpected data after the JSON object at %s", position(data, end+int64(extra)))
	}
	return nil
}

func describeJSONError(data []byte, err error) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.Is(err, io.EOF):
		return errors.New(`the file is empty; it needs at least {"port": 8080}`)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the JSON ends too early (a missing } or \"?)")
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("invalid JSON at %s: %s", position(data, syntaxErr.Offset), strings.TrimPrefix(syntaxErr.Error(), "json: "))
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Errorf("the file must hold one JSON object, got %s", typeErr.Value)
		}
		return fmt.Errorf("%s: must be %s, got %s", typeErr.Field, describeType(typeErr.Type.String()), typeErr.Value)
	}
	// DisallowUnknownFields reports `json: unknown field "name"`, with no
	// typed error to match.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown field (is it misspelt?)", strings.Trim(name, `"`))
	}
	return err
}

func describeType(goType string) string {
	switch goType {
	case "int":
		return "a whole number"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	}
	return goType
}

// position turns a byte offset into "line L, column C" for people.
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
