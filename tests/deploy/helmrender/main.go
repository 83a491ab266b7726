// helmrender renders a Helm chart the way `helm template` does, without Helm.
//
// It exists because Helm cannot be installed where the tests run. It follows
// Helm 3's engine closely enough for one application chart without subcharts:
//
//   - Chart.yaml is loaded into a struct with Helm's field names (.Chart.Name,
//     .Chart.Version, .Chart.AppVersion, ...); the chart's kubeVersion
//     constraint is checked against --kube-version.
//   - values.yaml, then every -f file in order: the -f files are deep-merged
//     (later wins), then coalesced over the chart's values (a null deletes a
//     default key), as Helm's CoalesceValues does. Values are read through JSON
//     like sigs.k8s.io/yaml, so numbers are float64 as in Helm.
//   - every file under templates/ (subdirectories included) is parsed into one
//     template set named "<chart>/templates/<path>"; files whose name starts
//     with "_" are partials, NOTES.txt is rendered but not printed.
//   - functions: Sprig's text functions minus env/expandenv, plus include, tpl,
//     required, toYaml, mustToYaml, toYamlPretty, fromYaml, fromYamlArray,
//     toJson, mustToJson, fromJson, fromJsonArray, lookup (always an empty map,
//     as in `helm template`), fail; toToml is reported as unsupported.
//   - "missingkey=zero" and "<no value>" replaced by "", as Helm does.
//   - output: documents split like Helm's SplitManifests, each with a
//     "# Source: <chart>/templates/<file>" comment, ordered by Helm's install
//     order of kinds, hooks last. A document that is not a YAML mapping makes
//     the program exit 1 naming the file.
//
// Usage:
//
//	helmrender [NAME] CHART_DIR [-f values.yaml]... [--release-name NAME]
//	           [--namespace NS] [--kube-version v1.30.0] [--api-versions G/V]...
//	           [--is-upgrade] [--json]
//
// --json prints a JSON array of {"source": ..., "doc": <parsed document>}.
//
// Build (GOPATH mode, Debian packages golang-go, golang-github-masterminds-sprig-dev,
// golang-gopkg-yaml.v3-dev):
//
//	GO111MODULE=off GOPATH=$WORK/gopath:/usr/share/gocode go build -o helmrender .
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	yaml2 "gopkg.in/yaml.v2"
	"gopkg.in/yaml.v3"
)

// ---------------------------------------------------------------- chart data

// Maintainer is Helm's chart.Maintainer.
type Maintainer struct {
	Name  string `yaml:"name" json:"name,omitempty"`
	Email string `yaml:"email" json:"email,omitempty"`
	URL   string `yaml:"url" json:"url,omitempty"`
}

// Dependency is Helm's chart.Dependency (only to refuse subcharts).
type Dependency struct {
	Name       string `yaml:"name" json:"name"`
	Version    string `yaml:"version" json:"version,omitempty"`
	Repository string `yaml:"repository" json:"repository"`
}

// Metadata is Helm's chart.Metadata: the fields .Chart exposes.
type Metadata struct {
	Name         string            `yaml:"name" json:"name,omitempty"`
	Home         string            `yaml:"home" json:"home,omitempty"`
	Sources      []string          `yaml:"sources" json:"sources,omitempty"`
	Version      string            `yaml:"version" json:"version,omitempty"`
	Description  string            `yaml:"description" json:"description,omitempty"`
	Keywords     []string          `yaml:"keywords" json:"keywords,omitempty"`
	Maintainers  []*Maintainer     `yaml:"maintainers" json:"maintainers,omitempty"`
	Icon         string            `yaml:"icon" json:"icon,omitempty"`
	APIVersion   string            `yaml:"apiVersion" json:"apiVersion,omitempty"`
	Condition    string            `yaml:"condition" json:"condition,omitempty"`
	Tags         string            `yaml:"tags" json:"tags,omitempty"`
	AppVersion   string            `yaml:"appVersion" json:"appVersion,omitempty"`
	Deprecated   bool              `yaml:"deprecated" json:"deprecated,omitempty"`
	Annotations  map[string]string `yaml:"annotations" json:"annotations,omitempty"`
	KubeVersion  string            `yaml:"kubeVersion" json:"kubeVersion,omitempty"`
	Dependencies []*Dependency     `yaml:"dependencies" json:"dependencies,omitempty"`
	Type         string            `yaml:"type" json:"type,omitempty"`
}

// KubeVersion is Helm's chartutil.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv KubeVersion) String() string     { return kv.Version }
func (kv KubeVersion) GitVersion() string { return kv.Version }

// VersionSet is Helm's chartutil.VersionSet.
type VersionSet []string

// Has reports whether the API version (group/version or group/version/Kind) is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// HelmVersion is what .Capabilities.HelmVersion shows.
type HelmVersion struct {
	Version      string `json:"version"`
	GitCommit    string `json:"git_commit"`
	GitTreeState string `json:"git_tree_state"`
	GoVersion    string `json:"go_version"`
}

// Capabilities is Helm's chartutil.Capabilities.
type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion HelmVersion
}

// The API versions of a plain cluster (what `helm template` knows without
// --api-versions): group/version and group/version/Kind.
var defaultAPIVersions = []string{
	"v1", "v1/ConfigMap", "v1/Secret", "v1/Service", "v1/ServiceAccount", "v1/Pod",
	"v1/PersistentVolumeClaim", "v1/Namespace", "v1/Endpoints",
	"apps/v1", "apps/v1/Deployment", "apps/v1/StatefulSet", "apps/v1/DaemonSet", "apps/v1/ReplicaSet",
	"batch/v1", "batch/v1/Job", "batch/v1/CronJob",
	"autoscaling/v1", "autoscaling/v1/HorizontalPodAutoscaler",
	"autoscaling/v2", "autoscaling/v2/HorizontalPodAutoscaler",
	"policy/v1", "policy/v1/PodDisruptionBudget",
	"networking.k8s.io/v1", "networking.k8s.io/v1/Ingress", "networking.k8s.io/v1/IngressClass",
	"networking.k8s.io/v1/NetworkPolicy",
	"rbac.authorization.k8s.io/v1", "rbac.authorization.k8s.io/v1/Role",
	"rbac.authorization.k8s.io/v1/RoleBinding", "rbac.authorization.k8s.io/v1/ClusterRole",
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding",
	"storage.k8s.io/v1", "scheduling.k8s.io/v1", "coordination.k8s.io/v1",
	"discovery.k8s.io/v1", "events.k8s.io/v1", "node.k8s.io/v1",
	"admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
	"certificates.k8s.io/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1",
	"flowcontrol.apiserver.k8s.io/v1",
}

// Files is Helm's engine Files: the chart's non-template files.
type Files map[string][]byte

// GetBytes returns a file's bytes (nil when absent).
func (f Files) GetBytes(name string) []byte {
	if v, ok := f[name]; ok {
		return v
	}
	return []byte{}
}

// Get returns a file's content ("" when absent).
func (f Files) Get(name string) string { return string(f.GetBytes(name)) }

// Glob returns the files whose path matches a glob (** crosses directories).
func (f Files) Glob(pattern string) Files {
	re, err := globToRegexp(pattern)
	out := Files{}
	if err != nil {
		return out
	}
	for name, data := range f {
		if re.MatchString(name) {
			out[name] = data
		}
	}
	return out
}

// AsConfig renders the files as ConfigMap data (base name -> content).
func (f Files) AsConfig() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}

// AsSecrets renders the files as Secret data (base name -> base64).
func (f Files) AsSecrets() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	return toYAML(m)
}

// Lines returns a file's lines.
func (f Files) Lines(p string) []string {
	data, ok := f[p]
	if !ok || len(data) == 0 {
		return []string{}
	}
	s := string(data)
	if s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return strings.Split(s, "\n")
}

func globToRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	inClass, inAlt := false, 0
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case inClass:
			if c == ']' {
				inClass = false
			}
			if c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		case c == '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				b.WriteString(".*")
				i++
			} else {
				b.WriteString("[^/]*")
			}
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			inClass = true
			b.WriteByte('[')
			if i+1 < len(pattern) && pattern[i+1] == '!' {
				b.WriteByte('^')
				i++
			}
		case c == '{':
			inAlt++
			b.WriteString("(?:")
		case c == '}' && inAlt > 0:
			inAlt--
			b.WriteString(")")
		case c == ',' && inAlt > 0:
			b.WriteString("|")
		case c == '\\' && i+1 < len(pattern):
			i++
			b.WriteString(regexp.QuoteMeta(string(pattern[i])))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// ---------------------------------------------------------------- YAML/JSON

// normalize turns a yaml.v3 decoded value into JSON types with string keys.
func normalize(v interface{}) interface{} {
	switch x := v.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case map[interface{}]interface{}:
		out := make(map[string]interface{}, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = normalize(e)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	default:
		return v
	}
}

// yamlToJSONValue reads YAML the way sigs.k8s.io/yaml does: through JSON, so
// numbers become float64.
func yamlToJSONValue(data []byte, out interface{}) error {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return err
	}
	j, err := json.Marshal(normalize(raw))
	if err != nil {
		return err
	}
	return json.Unmarshal(j, out)
}

// toYAML is Helm's toYaml: sigs.k8s.io/yaml.Marshal (JSON, then yaml.v2), trailing newline trimmed.
func toYAML(v interface{}) string {
	s, err := marshalYAML(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(s, "\n")
}

func marshalYAML(v interface{}) (string, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var obj interface{}
	if err := yaml2.Unmarshal(j, &obj); err != nil {
		return "", err
	}
	out, err := yaml2.Marshal(obj)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func toYAMLPretty(v interface{}) string {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yamlToJSONValue([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yamlToJSONValue([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// ---------------------------------------------------------------- values

func istable(v interface{}) bool {
	_, ok := v.(map[string]interface{})
	return ok
}

// mergeMaps merges user values files: b over a, maps deep, everything else replaced.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bvm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bvm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

func warnf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "warning: "+format+"\n", args...)
}

// coalesceTables is Helm's coalesceTablesFullKey: dst (user) wins over src
// (chart defaults); a user null deletes the key.
func coalesceTables(dst, src map[string]interface{}, prefix string) {
	for key, val := range src {
		full := strings.TrimPrefix(prefix+"."+key, ".")
		dv, ok := dst[key]
		switch {
		case ok && dv == nil:
			delete(dst, key)
		case !ok:
			dst[key] = val
		case istable(val):
			if istable(dv) {
				coalesceTables(dv.(map[string]interface{}), val.(map[string]interface{}), full)
			} else {
				warnf("cannot overwrite table with non table for %s (%v)", full, val)
			}
		case istable(dv) && val != nil:
			warnf("destination for %s is a table. Ignoring non-table value (%v)", full, val)
		}
	}
}

func deepCopy(v interface{}) interface{} {
	j, _ := json.Marshal(v)
	var out interface{}
	_ = json.Unmarshal(j, &out)
	return out
}

func readValuesFile(p string) (map[string]interface{}, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if len(bytes.TrimSpace(data)) == 0 {
		return m, nil
	}
	if err := yamlToJSONValue(data, &m); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %v", p, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// ---------------------------------------------------------------- .helmignore

type ignoreRule struct {
	pattern string
	negate  bool
	dirOnly bool
}

func loadIgnore(chartDir string) []ignoreRule {
	rules := []ignoreRule{{pattern: "templates/.?*"}}
	data, err := os.ReadFile(filepath.Join(chartDir, ".helmignore"))
	if err != nil {
		return rules
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.negate = true
			line = line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly = true
			line = strings.TrimSuffix(line, "/")
		}
		r.pattern = strings.TrimPrefix(line, "/")
		rules = append(rules, r)
	}
	return rules
}

func ignored(rules []ignoreRule, rel string, isDir bool) bool {
	out := false
	for _, r := range rules {
		if r.dirOnly && !isDir {
			continue
		}
		var m bool
		if strings.Contains(r.pattern, "/") {
			m, _ = path.Match(r.pattern, rel)
		} else {
			m, _ = path.Match(r.pattern, path.Base(rel))
		}
		if m {
			out = !r.negate
		}
	}
	return out
}

// ---------------------------------------------------------------- chart

type chartFiles struct {
	meta      *Metadata
	values    map[string]interface{}
	templates map[string]string // "templates/x.yaml" -> text
	files     Files
}

func loadChart(dir string) (*chartFiles, error) {
	c := &chartFiles{templates: map[string]string{}, files: Files{}}
	rules := loadIgnore(dir)
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignored(rules, rel, info.IsDir()) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case rel == "Chart.yaml":
			c.meta = &Metadata{}
			if err := yaml.Unmarshal(data, c.meta); err != nil {
				return fmt.Errorf("cannot load Chart.yaml: %v", err)
			}
		case rel == "values.yaml":
			m := map[string]interface{}{}
			if err := yamlToJSONValue(data, &m); err != nil {
				return fmt.Errorf("cannot load values.yaml: %v", err)
			}
			if m == nil {
				m = map[string]interface{}{}
			}
			c.values = m
		case rel == "values.schema.json", rel == ".helmignore", rel == "Chart.lock",
			rel == "requirements.yaml", rel == "requirements.lock":
		case strings.HasPrefix(rel, "templates/"):
			c.templates[rel] = string(data)
		case strings.HasPrefix(rel, "charts/"):
			return fmt.Errorf("subcharts (%s) are not supported by helmrender", rel)
		default:
			c.files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if c.meta == nil {
		return nil, errors.New("Chart.yaml file is missing")
	}
	if c.meta.APIVersion == "" {
		return nil, errors.New("validation: chart.metadata.apiVersion is required")
	}
	if c.meta.Name == "" {
		return nil, errors.New("validation: chart.metadata.name is required")
	}
	if c.meta.Version == "" {
		return nil, errors.New("validation: chart.metadata.version is required")
	}
	if _, err := semver.NewVersion(c.meta.Version); err != nil {
		return nil, fmt.Errorf("validation: chart.metadata.version %q is invalid", c.meta.Version)
	}
	if len(c.meta.Dependencies) > 0 {
		return nil, errors.New("chart dependencies are not supported by helmrender")
	}
	if c.values == nil {
		c.values = map[string]interface{}{}
	}
	return c, nil
}

// ---------------------------------------------------------------- engine

const recursionMax = 1000

type engine struct {
	t        *template.Template
	included map[string]int
}

func (e *engine) funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"mustToYaml":    func(v interface{}) (string, error) { s, err := marshalYAML(v); return strings.TrimSuffix(s, "\n"), err },
		"toYamlPretty":  toYAMLPretty,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson": func(v interface{}) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"toToml": func(v interface{}) (string, error) {
			return "", errors.New("toToml is not supported by helmrender")
		},
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(warnWrap(warn))
			}
			if s, ok := val.(string); ok && s == "" {
				return val, errors.New(warnWrap(warn))
			}
			return val, nil
		},
		"fail": func(msg string) (string, error) { return "", errors.New(warnWrap(msg)) },
		"lookup": func(apiversion, resource, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		// Replaced per template set below; declared so templates parse.
		"include": func(string, interface{}) (string, error) { return "", nil },
		"tpl":     func(string, interface{}) (string, error) { return "", nil },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func (e *engine) includeFun(t *template.Template) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := e.included[name]; ok {
			if v > recursionMax {
				return "", fmt.Errorf("unable to execute template: rendering template has a nested reference name: %s", name)
			}
			e.included[name]++
		} else {
			e.included[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		e.included[name]--
		return buf.String(), err
	}
}

func pathValue(data interface{}, keys ...string) (interface{}, bool) {
	cur := data
	for _, k := range keys {
		m, ok := cur.(map[string]interface{})
		if !ok {
			return nil, false
		}
		cur, ok = m[k]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func (e *engine) tplFun(parent *template.Template) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %v", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{"include": e.includeFun(t), "tpl": e.tplFun(t)})
		name := "tpl"
		if v, ok := pathValue(vals, "Template", "Name"); ok {
			if s, ok := v.(string); ok && s != "" {
				name = s
			}
		}
		if _, err := t.New(name).Parse(text); err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

// Messages of required and fail are wrapped so the error can be cut down to
// them, as Helm does.
const (
	warnStart = "HELM_ERR_START"
	warnEnd   = "HELM_ERR_END"
)

var warnRe = regexp.MustCompile(warnStart + `((?s).*)` + warnEnd)

func warnWrap(msg string) string { return warnStart + msg + warnEnd }

// cleanupExecError shortens Go's template errors the way Helm does:
// "execution error at (<file>:<line>:<col>): <message of required/fail>".
func cleanupExecError(name string, err error) error {
	var ee template.ExecError
	if !errors.As(err, &ee) {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error in (%s): %s", name, err)
	}
	if parts := warnRe.FindStringSubmatch(tokens[2]); len(parts) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", tokens[1], parts[1])
	}
	return err
}

// sortTemplates orders template names like Helm: deeper paths first, then by name.
func sortTemplates(names []string) {
	sort.SliceStable(names, func(i, j int) bool {
		di, dj := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if di != dj {
			return di > dj
		}
		return names[i] < names[j]
	})
}

type renderOpts struct {
	releaseName string
	namespace   string
	kubeVersion string
	apiVersions []string
	isUpgrade   bool
}

func render(c *chartFiles, vals map[string]interface{}, o renderOpts) (map[string]string, error) {
	kv, err := semver.NewVersion(o.kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("invalid kube version %q: %v", o.kubeVersion, err)
	}
	if c.meta.KubeVersion != "" {
		cons, err := semver.NewConstraint(c.meta.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("invalid kubeVersion constraint %q in Chart.yaml: %v", c.meta.KubeVersion, err)
		}
		if !cons.Check(kv) {
			return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s",
				c.meta.KubeVersion, o.kubeVersion)
		}
	}
	caps := Capabilities{
		APIVersions: append(VersionSet(append([]string{}, defaultAPIVersions...)), o.apiVersions...),
		KubeVersion: KubeVersion{
			Version: "v" + strings.TrimPrefix(kv.Original(), "v"),
			Major:   strconv.FormatUint(kv.Major(), 10),
			Minor:   strconv.FormatUint(kv.Minor(), 10),
		},
		HelmVersion: HelmVersion{Version: "v3.16.0+helmrender", GoVersion: "go1.19"},
	}
	revision := 1
	if o.isUpgrade {
		revision = 2
	}
	release := map[string]interface{}{
		"Name":      o.releaseName,
		"Namespace": o.namespace,
		"IsUpgrade": o.isUpgrade,
		"IsInstall": !o.isUpgrade,
		"Revision":  revision,
		"Service":   "Helm",
	}

	e := &engine{included: map[string]int{}}
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	t.Funcs(e.funcMap())
	t.Funcs(template.FuncMap{"include": e.includeFun(t), "tpl": e.tplFun(t)})

	prefix := c.meta.Name + "/"
	var names []string
	for rel := range c.templates {
		names = append(names, prefix+rel)
	}
	sortTemplates(names)
	for _, name := range names {
		if _, err := t.New(name).Parse(c.templates[strings.TrimPrefix(name, prefix)]); err != nil {
			return nil, fmt.Errorf("parse error at (%s): %v", name, strings.TrimPrefix(err.Error(), "template: "))
		}
	}

	out := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		top := map[string]interface{}{
			"Chart":        c.meta,
			"Capabilities": caps,
			"Release":      release,
			"Values":       vals,
			"Files":        c.files,
			"Subcharts":    map[string]interface{}{},
			"Template": map[string]interface{}{
				"Name":     name,
				"BasePath": prefix + "templates",
			},
		}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, top); err != nil {
			return nil, cleanupExecError(name, err)
		}
		out[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// ---------------------------------------------------------------- manifests

var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
	"RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

var sepRe = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source  string
	content string
	doc     interface{}
	kind    string
	hook    bool
}

func splitManifests(files map[string]string) ([]manifest, error) {
	var names []string
	for n := range files {
		if strings.HasSuffix(n, "NOTES.txt") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var out []manifest
	for _, n := range names {
		text := files[n]
		if strings.TrimSpace(text) == "" {
			continue
		}
		for _, part := range sepRe.Split(text, -1) {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			var raw interface{}
			// Parsed with the newline that follows it in the stream, as the
			// cluster gets it (a final block scalar keeps its line break).
			if err := yaml.Unmarshal([]byte(part+"\n"), &raw); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %v", n, err)
			}
			m := manifest{source: n, content: part}
			if raw != nil {
				doc, ok := normalize(raw).(map[string]interface{})
				if !ok {
					return nil, fmt.Errorf("YAML parse error on %s: a document is not a mapping", n)
				}
				m.doc = doc
				m.kind, _ = doc["kind"].(string)
				if a, ok := pathValue(doc, "metadata", "annotations", "helm.sh/hook"); ok && a != nil && a != "" {
					m.hook = true
				}
			}
			out = append(out, m)
		}
	}
	order := map[string]int{}
	for i, k := range installOrder {
		order[k] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.hook != b.hook {
			return !a.hook
		}
		oa, aok := order[a.kind]
		ob, bok := order[b.kind]
		switch {
		case !aok && !bok:
			return a.kind < b.kind
		case !aok:
			return false
		case !bok:
			return true
		}
		return oa < ob
	})
	return out, nil
}

// ---------------------------------------------------------------- main

func usage() {
	fmt.Fprintln(os.Stderr, `usage: helmrender [NAME] CHART_DIR [-f values.yaml]... [--release-name NAME] [--namespace NS]
                  [--kube-version v1.30.0] [--api-versions GROUP/VERSION]... [--is-upgrade] [--json]`)
	os.Exit(2)
}

func main() {
	o := renderOpts{releaseName: "release-name", namespace: "default", kubeVersion: "v1.30.0"}
	var valueFiles, positional []string
	jsonOut := false
	args := os.Args[1:]
	next := func(i *int, flag string) string {
		if *i+1 >= len(args) {
			fmt.Fprintf(os.Stderr, "helmrender: %s needs a value\n", flag)
			os.Exit(2)
		}
		*i++
		return args[*i]
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := a, "", false
		if strings.HasPrefix(a, "--") && strings.Contains(a, "=") {
			k := strings.SplitN(a, "=", 2)
			name, val, hasVal = k[0], k[1], true
		}
		get := func() string {
			if hasVal {
				return val
			}
			return next(&i, name)
		}
		switch name {
		case "-f", "--values":
			valueFiles = append(valueFiles, get())
		case "--release-name", "--name":
			o.releaseName = get()
		case "-n", "--namespace":
			o.namespace = get()
		case "--kube-version":
			o.kubeVersion = get()
		case "-a", "--api-versions":
			o.apiVersions = append(o.apiVersions, get())
		case "--is-upgrade":
			o.isUpgrade = true
		case "--json":
			jsonOut = true
		case "-h", "--help":
			usage()
		default:
			if strings.HasPrefix(a, "-") {
				fmt.Fprintf(os.Stderr, "helmrender: unknown flag %s\n", a)
				usage()
			}
			positional = append(positional, a)
		}
	}
	var chartDir string
	switch len(positional) {
	case 1:
		chartDir = positional[0]
	case 2:
		o.releaseName, chartDir = positional[0], positional[1]
	default:
		usage()
	}
	if err := run(chartDir, valueFiles, o, jsonOut); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func run(chartDir string, valueFiles []string, o renderOpts, jsonOut bool) error {
	c, err := loadChart(chartDir)
	if err != nil {
		return err
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		m, err := readValuesFile(f)
		if err != nil {
			return err
		}
		user = mergeMaps(user, m)
	}
	// CoalesceValues: user values over a copy of the chart's.
	vals := deepCopy(user).(map[string]interface{})
	coalesceTables(vals, deepCopy(c.values).(map[string]interface{}), "")

	rendered, err := render(c, vals, o)
	if err != nil {
		return err
	}
	ms, err := splitManifests(rendered)
	if err != nil {
		return err
	}
	if jsonOut {
		type entry struct {
			Source string      `json:"source"`
			Doc    interface{} `json:"doc"`
		}
		list := []entry{}
		for _, m := range ms {
			if m.doc != nil {
				list = append(list, entry{m.source, m.doc})
			}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", " ")
		return enc.Encode(list)
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	_, err = os.Stdout.WriteString(b.String())
	return err
}
