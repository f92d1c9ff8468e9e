package strictjson_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/switchyard-proxy/switchyard/cmd/internal/strictjson"
)

type file struct {
	Port  int      `json:"port"`
	Names []string `json:"names"`
}

func TestDecode(t *testing.T) {
	var f file
	require.NoError(t, strictjson.Decode([]byte(`{"port": 1, "names": ["a"]}`), &f))
	assert.Equal(t, file{Port: 1, Names: []string{"a"}}, f)

	for in, want := range map[string]string{
		``:                    "the file is empty",
		`{"port": 1`:          "the JSON ends too early",
		"{\n \"port\": 1,\n}": "invalid JSON at line 3",
		`{"port": "1"}`:       "port: must be a whole number, got string",
		`{"names": [1]}`:      "names: must be a string, got number",
		`{"prot": 1}`:         "prot: unknown field (is it misspelt?)",
		"{\"port\": 1}\n{}":   "unexpected data after the JSON object at line 2, column 1",
		`[1]`:                 "the file must hold one JSON object, got array",
	} {
		err := strictjson.Decode([]byte(in), &file{})
		assert.ErrorContains(t, err, want, "%q", in)
	}
}
