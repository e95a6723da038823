package firecracker

// A small validator of API requests against Firecracker's swagger 2.0 spec:
// the path and method must exist, the JSON body must match the body
// parameter's schema (known fields only, right JSON types, enums, integer
// bounds, required fields) and path parameters must agree with the body
// fields of the same name.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// specEnv names Firecracker's API spec (src/firecracker/swagger/firecracker.yaml
// in the firecracker repository). It is Firecracker's file, not banger's, so the
// repository does not carry it: without it the contract tests skip.
const specEnv = "BANGER_FIRECRACKER_SPEC"

// sharedSpec is where a development checkout finds the spec: beside the
// repository, in shared/reference.
const sharedSpec = "../shared/reference/firecracker/firecracker-api.yaml"

type swaggerDoc struct {
	Swagger     string                          `yaml:"swagger"`
	Paths       map[string]map[string]swaggerOp `yaml:"paths"`
	Definitions map[string]*swaggerSchema       `yaml:"definitions"`
}

type swaggerOp struct {
	Parameters []swaggerParam `yaml:"parameters"`
}

type swaggerParam struct {
	Name     string         `yaml:"name"`
	In       string         `yaml:"in"`
	Required bool           `yaml:"required"`
	Type     string         `yaml:"type"`
	Schema   *swaggerSchema `yaml:"schema"`
}

type swaggerSchema struct {
	Ref        string                    `yaml:"$ref"`
	Type       string                    `yaml:"type"`
	Required   []string                  `yaml:"required"`
	Properties map[string]*swaggerSchema `yaml:"properties"`
	Items      *swaggerSchema            `yaml:"items"`
	Enum       []any                     `yaml:"enum"`
	Minimum    *float64                  `yaml:"minimum"`
	Maximum    *float64                  `yaml:"maximum"`
	ReadOnly   bool                      `yaml:"readOnly"`
}

// specFile returns the spec's path: $BANGER_FIRECRACKER_SPEC, else
// ../shared/reference beside the repository root; "" when neither exists.
func specFile() string {
	if p := os.Getenv(specEnv); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, sharedSpec)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
	}
	return ""
}

// loadSwagger reads the spec, or skips the test with one line saying how to
// run it when the spec is not there.
func loadSwagger(t *testing.T) *swaggerDoc {
	t.Helper()
	path := specFile()
	if path == "" {
		t.Skipf("firecracker API spec not found: set %s to firecracker's src/firecracker/swagger/firecracker.yaml to run this contract test", specEnv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("firecracker api spec: %v", err)
	}
	var doc swaggerDoc
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if doc.Swagger != "2.0" || len(doc.Paths) == 0 || len(doc.Definitions) == 0 {
		t.Fatalf("%s: not a swagger 2.0 spec with paths and definitions", path)
	}
	return &doc
}

// checkRequest validates one request; body is nil for none.
func (d *swaggerDoc) checkRequest(method, path string, body []byte) error {
	tmpl, params, ok := d.matchPath(path)
	if !ok {
		return fmt.Errorf("%s %s: no such path in the spec", method, path)
	}
	op, ok := d.Paths[tmpl][strings.ToLower(method)]
	if !ok {
		return fmt.Errorf("%s %s: path %s has no %s operation", method, path, tmpl, method)
	}
	var bodyParam *swaggerParam
	for i, p := range op.Parameters {
		if p.In == "body" {
			bodyParam = &op.Parameters[i]
		}
	}
	if bodyParam == nil {
		if len(body) > 0 {
			return fmt.Errorf("%s %s: the spec takes no body", method, path)
		}
		return nil
	}
	if len(body) == 0 {
		if bodyParam.Required {
			return fmt.Errorf("%s %s: body is required", method, path)
		}
		return nil
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s %s: body is not json: %w", method, path, err)
	}
	var errs []error
	d.checkValue(v, bodyParam.Schema, "body", &errs)
	if obj, ok := v.(map[string]any); ok {
		for name, val := range params {
			if got, ok := obj[name]; ok && got != val {
				errs = append(errs, fmt.Errorf("body.%s = %v, but the path says %q", name, got, val))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

// matchPath finds the path template matching path and its path parameters.
func (d *swaggerDoc) matchPath(path string) (string, map[string]string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for tmpl := range d.Paths {
		tsegs := strings.Split(strings.Trim(tmpl, "/"), "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, ts := range tsegs {
			if strings.HasPrefix(ts, "{") && strings.HasSuffix(ts, "}") && segs[i] != "" {
				params[ts[1:len(ts)-1]] = segs[i]
			} else if ts != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return tmpl, params, true
		}
	}
	return "", nil, false
}

func (d *swaggerDoc) resolve(s *swaggerSchema) (*swaggerSchema, error) {
	for s != nil && s.Ref != "" {
		name, ok := strings.CutPrefix(s.Ref, "#/definitions/")
		if !ok || d.Definitions[name] == nil {
			return nil, fmt.Errorf("unresolvable $ref %q", s.Ref)
		}
		s = d.Definitions[name]
	}
	return s, nil
}

func (d *swaggerDoc) checkValue(v any, s *swaggerSchema, at string, errs *[]error) {
	bad := func(format string, a ...any) { *errs = append(*errs, fmt.Errorf(at+": "+format, a...)) }
	s, err := d.resolve(s)
	if err != nil {
		bad("%v", err)
		return
	}
	if s == nil {
		return
	}
	typ := s.Type
	if typ == "" && s.Properties != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			bad("want an object, got %T", v)
			return
		}
		for _, r := range s.Required {
			if _, ok := obj[r]; !ok {
				bad("required field %q missing", r)
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := s.Properties[k]
			switch {
			case !ok:
				bad("unknown field %q", k)
			case ps.ReadOnly:
				bad("field %q is read-only", k)
			default:
				d.checkValue(obj[k], ps, at+"."+k, errs)
			}
		}
		return
	case "string":
		if _, ok := v.(string); !ok {
			bad("want a string, got %T", v)
			return
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			bad("want a boolean, got %T", v)
			return
		}
	case "integer", "number":
		f, ok := v.(float64)
		if !ok {
			bad("want a %s, got %T", typ, v)
			return
		}
		if typ == "integer" && f != math.Trunc(f) {
			bad("want an integer, got %v", f)
		}
		if s.Minimum != nil && f < *s.Minimum {
			bad("%v is below the minimum %v", f, *s.Minimum)
		}
		if s.Maximum != nil && f > *s.Maximum {
			bad("%v is above the maximum %v", f, *s.Maximum)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			bad("want an array, got %T", v)
			return
		}
		for i, e := range arr {
			d.checkValue(e, s.Items, fmt.Sprintf("%s[%d]", at, i), errs)
		}
		return
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		bad("%v is not one of %v", v, s.Enum)
	}
}

// The validator must catch what it is there to catch.
func TestSwaggerValidatorRejects(t *testing.T) {
	doc := loadSwagger(t)
	good := []struct{ method, path, body string }{
		{"PUT", "/machine-config", `{"vcpu_count": 2, "mem_size_mib": 512}`},
		{"PUT", "/drives/d0", `{"drive_id": "d0", "path_on_host": "/x", "is_root_device": false, "is_read_only": true}`},
		{"PUT", "/actions", `{"action_type": "SendCtrlAltDel"}`},
		{"GET", "/", ``},
	}
	for _, g := range good {
		if err := doc.checkRequest(g.method, g.path, []byte(g.body)); err != nil {
			t.Errorf("valid request rejected: %v", err)
		}
	}
	bad := []struct{ method, path, body, want string }{
		{"PUT", "/nope", `{}`, "no such path"},
		{"DELETE", "/machine-config", ``, "no DELETE operation"},
		{"PUT", "/machine-config", `{"vcpu_count": 2}`, `"mem_size_mib" missing`},
		{"PUT", "/machine-config", `{"vcpu_count": "2", "mem_size_mib": 512}`, "want a integer"},
		{"PUT", "/machine-config", `{"vcpu_count": 1.5, "mem_size_mib": 512}`, "want an integer"},
		{"PUT", "/machine-config", `{"vcpu_count": 33, "mem_size_mib": 512}`, "above the maximum"},
		{"PUT", "/machine-config", `{"vcpus": 2, "vcpu_count": 2, "mem_size_mib": 512}`, `unknown field "vcpus"`},
		{"PUT", "/boot-source", ``, "body is required"},
		{"PUT", "/drives/d0", `{"drive_id": "d1", "is_root_device": false}`, "path says"},
		{"PUT", "/drives/d0", `{"drive_id": "d0", "is_root_device": "no"}`, "want a boolean"},
		{"PUT", "/drives/d0", `{"drive_id": "d0", "is_root_device": false, "cache_type": "None"}`, "not one of"},
		{"PUT", "/actions", `{"action_type": "Reboot"}`, "not one of"},
		{"PUT", "/network-interfaces/eth0", `{"iface_id": "eth0"}`, `"host_dev_name" missing`},
		{"PUT", "/network-interfaces/eth0", `[1]`, "want an object"},
	}
	for _, b := range bad {
		err := doc.checkRequest(b.method, b.path, []byte(b.body))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s %s %s: error %v, want one containing %q", b.method, b.path, b.body, err, b.want)
		}
	}
}
