package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// Kind says which DNS records a source reads.
type Kind string

const (
	// KindA reads every A and AAAA record of the name; the port is the
	// source's.
	KindA Kind = "a"
	// KindSRV reads the SRV records of the name and resolves each target to
	// its addresses; the port is each record's.
	KindSRV Kind = "srv"
)

// Schemes a source may give its backends. h2c is HTTP/2 without TLS, which
// gRPC backends in a cluster often speak.
const (
	SchemeHTTP  = "http"
	SchemeHTTPS = "https"
	SchemeH2C   = "h2c"
)

// A Source is one DNS name whose records are backends. Build it with
// ParseSource or DecodeSource, or fill it in and let New check it.
type Source struct {
	// Discover says which records to read.
	Discover Kind
	// Name is the DNS name, lower case, without a trailing dot. It is always
	// looked up as written, as an absolute name: the resolver's search list
	// is not applied (see the package doc).
	Name string
	// Port is where the backends of a KindA source listen, 1 to 65535. It
	// must be zero for KindSRV, whose records carry their own ports.
	Port int
	// Scheme is SchemeHTTP, SchemeHTTPS or SchemeH2C. Zero means SchemeHTTP.
	Scheme string
}

// String returns the source's identity, the name it is handed to the Sink
// under: "a+http://api.default.svc.cluster.local:8080" or
// "srv+http://_http._tcp.api.service.consul". Two sources with the same
// string are the same source.
func (s Source) String() string {
	scheme := s.Scheme
	if scheme == "" {
		scheme = SchemeHTTP
	}
	if s.Discover == KindA {
		return fmt.Sprintf("%s+%s://%s:%d", s.Discover, scheme, s.Name, s.Port)
	}
	return fmt.Sprintf("%s+%s://%s", s.Discover, scheme, s.Name)
}

// Entry is a discovery source as config.json writes it, one element of its
// "backends" list:
//
//	{"discover": "a", "name": "api.default.svc.cluster.local", "port": 8080, "scheme": "http"}
//	{"discover": "srv", "name": "_http._tcp.api.service.consul"}
type Entry struct {
	Discover string `json:"discover"`
	Name     string `json:"name"`
	// Port is a pointer so that a missing port, which "a" needs and "srv"
	// must not have, can be told from "port": 0.
	Port   *int   `json:"port,omitempty"`
	Scheme string `json:"scheme,omitempty"`
}

// ErrInvalidSource is wrapped by every error of ParseSource, DecodeSource
// and of New about a source.
var ErrInvalidSource = errors.New("discovery: invalid source")

// DecodeSource decodes one "backends" element that is a JSON object and
// parses it with ParseSource. Unknown fields, values of the wrong type and
// anything after the object are errors, like everywhere in config.json.
func DecodeSource(data []byte) (Source, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return Source{}, fmt.Errorf("%w: %s: must be %s, got %s", ErrInvalidSource, typeErr.Field, jsonType(typeErr.Field), typeErr.Value)
		case errors.As(err, &typeErr):
			return Source{}, fmt.Errorf("%w: must be a JSON object, got %s", ErrInvalidSource, typeErr.Value)
		}
		// The decoder's own wording ("json: unknown field \"weight\"") names
		// the field; only its prefix is noise here.
		return Source{}, fmt.Errorf("%w: %s", ErrInvalidSource, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Source{}, fmt.Errorf("%w: unexpected data after the object", ErrInvalidSource)
	}
	return ParseSource(e)
}

func jsonType(field string) string {
	if field == "port" {
		return "a whole number"
	}
	return "a string"
}

// ParseSource checks e and returns the source it describes, with its name
// lower-cased and its scheme defaulted. Its error wraps ErrInvalidSource,
// names the entry by its name and lists every problem on one line, each
// starting with its field, so that the config loader need only prefix the
// entry's place ("backends[2]: ").
func ParseSource(e Entry) (Source, error) {
	var problems []string
	bad := func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	}

	s := Source{Discover: Kind(e.Discover), Scheme: e.Scheme}
	switch s.Discover {
	case KindA, KindSRV:
	case "":
		bad("discover", "missing; must be %q or %q", KindA, KindSRV)
	default:
		bad("discover", "must be %q or %q, got %q", KindA, KindSRV, e.Discover)
	}

	name, err := checkName(e.Name)
	if err != nil {
		bad("name", "%s", err)
	}
	s.Name = name

	switch {
	case s.Discover == KindA && e.Port == nil:
		bad("port", "missing; %q needs the port the backends listen on, 1 to 65535", KindA)
	case s.Discover == KindA && (*e.Port < 1 || *e.Port > 65535):
		bad("port", "must be between 1 and 65535, got %d", *e.Port)
	case s.Discover == KindA:
		s.Port = *e.Port
	case s.Discover == KindSRV && e.Port != nil:
		bad("port", "not allowed with %q: each SRV record gives its own port", KindSRV)
	}

	if s.Scheme == "" {
		s.Scheme = SchemeHTTP
	}
	if err := checkScheme(s.Scheme); err != nil {
		bad("scheme", "%s", err)
	}

	if len(problems) > 0 {
		label := "(no name)"
		if strings.TrimSpace(e.Name) != "" {
			label = strconv.Quote(e.Name)
		}
		return Source{}, fmt.Errorf("%w %s: %s", ErrInvalidSource, label, strings.Join(problems, "; "))
	}
	return s, nil
}

// validate checks a Source built by hand the way ParseSource checks an
// Entry, and fills in the default scheme.
func (s Source) validate() (Source, error) {
	e := Entry{Discover: string(s.Discover), Name: s.Name, Scheme: s.Scheme}
	if s.Discover != KindSRV || s.Port != 0 {
		e.Port = &s.Port
	}
	return ParseSource(e)
}

func checkScheme(s string) error {
	switch s {
	case SchemeHTTP, SchemeHTTPS, SchemeH2C:
		return nil
	}
	return fmt.Errorf("must be %q, %q or %q, got %q", SchemeHTTP, SchemeHTTPS, SchemeH2C, s)
}

// checkName accepts what Go's resolver would send (RFC 1035 names, with "_"
// allowed for SRV's service labels) and returns it lower case without a
// trailing dot. A name the resolver would refuse must be caught here: the
// resolver reports it as "no such host", which would look like an empty
// service rather than a typo.
func checkName(raw string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(raw, "."))
	switch {
	case strings.TrimSpace(raw) == "":
		return "", errors.New("missing; the DNS name to look up")
	case len(n) > 253:
		return "", fmt.Errorf("longer than 253 characters: %q", raw)
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return "", fmt.Errorf("%q is an IP address, not a name; write it as a URL such as \"http://%s:8080\"", raw, raw)
	}
	letters := false
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q is not a DNS name: each dot-separated label must be 1 to 63 characters", raw)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a DNS name: a label must not start or end with \"-\"", raw)
		}
		for _, c := range []byte(label) {
			switch {
			case c >= 'a' && c <= 'z', c == '_', c == '-':
				letters = true
			case c >= '0' && c <= '9':
			default:
				return "", fmt.Errorf("%q is not a DNS name: only letters, digits, \"-\", \"_\" and dots are allowed", raw)
			}
		}
	}
	if !letters {
		// Go's resolver refuses all-numeric names.
		return "", fmt.Errorf("%q is not a DNS name", raw)
	}
	return n, nil
}
