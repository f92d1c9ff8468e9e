package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The deployment files under deploy/ and the Dockerfile are held against the
// proxy's own defaults and rules, so that they cannot drift from the program.

// defaults is the config of a file that sets only the port.
func defaults(t *testing.T) Config {
	t.Helper()
	cfg, err := loadConfig([]byte(`{"port": 8080}`), noEnv)
	require.NoError(t, err)
	return cfg
}

// k8sObject is the part of a Kubernetes object the test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas  int    `yaml:"replicas"`
		ClusterIP string `yaml:"clusterIP"`
		Template  struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Args           []string `yaml:"args"`
					ReadinessProbe struct {
						Exec struct {
							Command []string `yaml:"command"`
						} `yaml:"exec"`
						PeriodSeconds    int `yaml:"periodSeconds"`
						FailureThreshold int `yaml:"failureThreshold"`
					} `yaml:"readinessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func TestKubernetesExample(t *testing.T) {
	data, err := os.ReadFile("deploy/kubernetes.yaml")
	require.NoError(t, err)
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		objs[o.Kind+"/"+o.Metadata.Name] = o
	}

	// The ConfigMap's config.json is a valid config.
	cm, ok := objs["ConfigMap/switchyard"]
	require.True(t, ok)
	cfg, err := loadConfig([]byte(cm.Data["config.json"]), noEnv)
	require.NoError(t, err, "the example's config.json loads")

	dep, ok := objs["Deployment/switchyard"]
	require.True(t, ok)
	assert.GreaterOrEqual(t, dep.Spec.Replicas, 2, "more than one replica")
	pod := dep.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	ready := pod.Containers[0].ReadinessProbe
	assert.Equal(t, []string{"/switchyard", "-probe", "http://" + cfg.AdminAddr + "/healthz"}, ready.Exec.Command,
		"readiness is /healthz, probed from inside the pod where the admin API listens")
	assert.Contains(t, pod.Containers[0].Args, "/etc/switchyard/config.json")

	// The timings: /healthz says 503 for shutdown_delay, longer than the
	// readiness probe needs to notice; SIGKILL comes after shutdown_delay
	// and shutdown_timeout both.
	notice := time.Duration(ready.PeriodSeconds*ready.FailureThreshold) * time.Second
	assert.Greater(t, cfg.ShutdownDelay, notice, "shutdown_delay outlasts the readiness period")
	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	assert.Greater(t, grace, cfg.ShutdownDelay+cfg.ShutdownTimeout, "terminationGracePeriodSeconds covers the whole shutdown")

	// The backends come from a headless Service's records.
	require.Len(t, cfg.Sources, 1)
	svc, ok := objs["Service/api"]
	require.True(t, ok)
	assert.Equal(t, "None", svc.Spec.ClusterIP, "headless")
	assert.True(t, strings.HasPrefix(cfg.Sources[0].Name, svc.Metadata.Name+"."), cfg.Sources[0].Name)
}

// unitFile reads a systemd unit's Key=Value lines (every value of a key).
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "not Key=Value: %q", line)
		out[k] = append(out[k], v)
	}
	require.NoError(t, sc.Err())
	return out
}

func TestSystemdUnit(t *testing.T) {
	u := unitFile(t, "deploy/switchyard.service")
	assert.Equal(t, []string{"/bin/kill -HUP $MAINPID"}, u["ExecReload"], "reload is SIGHUP")
	assert.Equal(t, []string{"SIGTERM"}, u["KillSignal"])
	assert.Contains(t, u["ExecStartPre"][0], "-check", "a bad config never replaces a running one at restart")
	stop, err := time.ParseDuration(u["TimeoutStopSec"][0])
	require.NoError(t, err)
	d := defaults(t)
	assert.Greater(t, stop, d.ShutdownDelay+d.ShutdownTimeout, "systemd waits for the whole shutdown")
	for _, k := range []string{"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "DynamicUser",
		"RestrictAddressFamilies", "SystemCallFilter", "CapabilityBoundingSet"} {
		assert.NotEmpty(t, u[k], "hardening: %s", k)
	}
	assert.NotContains(t, strings.Join(u["SystemCallFilter"], " "), "@resources",
		"Go raises its open-files limit at start; filtering @resources would kill it")
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	var froms, users, stops, exposes []string
	var static bool
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "FROM":
			froms = append(froms, fields[1])
		case "USER":
			users = append(users, fields[1])
		case "STOPSIGNAL":
			stops = append(stops, fields[1])
		case "EXPOSE":
			exposes = append(exposes, fields[1:]...)
		case "RUN":
			static = static || strings.Contains(line, "CGO_ENABLED=0")
		}
	}
	assert.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	assert.True(t, static, "a static binary")
	require.NotEmpty(t, users)
	assert.False(t, slices.Contains([]string{"root", "0", "0:0"}, users[len(users)-1]), "runs as non-root")
	assert.Equal(t, []string{"SIGTERM"}, stops)
	shipped, err := os.ReadFile("../../config.json")
	require.NoError(t, err)
	cfg, err := loadConfig(shipped, noEnv)
	require.NoError(t, err)
	assert.Contains(t, exposes, "8080", "the shipped config's port")
	assert.Contains(t, string(data), `"-probe", "http://`+cfg.AdminAddr+`/healthz"`)
}
