package deploy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/s3clone/s3clone/internal/metrics"
)

// dashboardMetric is one metric a dashboard widget graphs.
type dashboardMetric struct {
	widget, namespace, name string
	dims                    map[string]string
	dimNames                []string
}

// dashboard reads the Dashboard resource's body, with the stack's
// variables left as ${...} text, into its widgets' metrics and expressions.
func dashboard(t *testing.T, tpl template) (metricsShown []dashboardMetric, expressions map[string][]string, ids map[string][]string, periods []float64) {
	t.Helper()
	body, ok := tpl.Resources["Dashboard"].Properties["DashboardBody"].(map[string]any)["Fn::Sub"].(string)
	if !ok {
		t.Fatalf("DashboardBody is %s, want a !Sub of JSON", key(tpl.Resources["Dashboard"].Properties["DashboardBody"]))
	}
	var doc struct {
		Widgets []struct {
			Type       string
			Properties struct {
				Title   string
				Region  string
				Period  float64
				Metrics [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("DashboardBody is not JSON: %v", err)
	}
	expressions, ids = map[string][]string{}, map[string][]string{}
	for _, w := range doc.Widgets {
		p := w.Properties
		if w.Type != "metric" || p.Region != "${AWS::Region}" || len(p.Metrics) == 0 {
			t.Errorf("widget %q: type %s, region %s, %d metrics; want metric widgets of the stack's region", p.Title, w.Type, p.Region, len(p.Metrics))
		}
		periods = append(periods, p.Period)
		for _, row := range p.Metrics {
			var opts map[string]any
			if last, ok := row[len(row)-1].(map[string]any); ok {
				opts, row = last, row[:len(row)-1]
			}
			if id, ok := opts["id"].(string); ok {
				ids[p.Title] = append(ids[p.Title], id)
			}
			if expr, ok := opts["expression"].(string); ok {
				expressions[p.Title] = append(expressions[p.Title], expr)
				continue
			}
			if len(row) < 2 || len(row)%2 != 0 {
				t.Errorf("widget %q: metric %v: want namespace, name and dimension pairs (no \"...\" shorthand)", p.Title, row)
				continue
			}
			m := dashboardMetric{widget: p.Title, namespace: row[0].(string), name: row[1].(string), dims: map[string]string{}}
			for i := 2; i < len(row); i += 2 {
				m.dims[row[i].(string)] = row[i+1].(string)
				m.dimNames = append(m.dimNames, row[i].(string))
			}
			metricsShown = append(metricsShown, m)
		}
	}
	return metricsShown, expressions, ids, periods
}

// TestDashboardShowsWhatTheWorkersEmit: every s3clone metric the dashboard
// graphs (directly or by SEARCH) is one the workers' EMF records carry, with
// the same dimensions, and the Fleet the workers are told is the stack's;
// the queues graphed are the stack's; expressions name metrics of their
// widget; and the operator sees copies/s, bytes/s, backlog, dead letters,
// throttles and workers.
func TestDashboardShowsWhatTheWorkersEmit(t *testing.T) {
	tpl := loadTemplate(t)
	emitted := metrics.EmittedMetrics()

	env := map[string]string{}
	for _, e := range list(container(t, tpl, "WorkerTaskDefinition")["Environment"]) {
		m := e.(map[string]any)
		env[m["Name"].(string)] = key(m["Value"])
	}
	if env["S3CLONE_EMF"] != `{"Ref":"AWS::StackName"}` {
		t.Errorf("the workers' S3CLONE_EMF is %s, want the stack's name (the dashboard's Fleet)", env["S3CLONE_EMF"])
	}

	shown, expressions, ids, periods := dashboard(t, tpl)
	for _, p := range periods {
		if p != 60 {
			t.Errorf("a widget's period is %v: Workers (a Sum of each worker's share of a minute) assumes 60", p)
		}
	}
	seen := map[string]bool{}
	for _, m := range shown {
		switch m.namespace {
		case metrics.Namespace:
			dims, ok := emitted[m.name]
			if !ok {
				t.Errorf("widget %q graphs %s, which the workers do not emit (they emit %v)", m.widget, m.name, emitted)
				continue
			}
			if !slices.Equal(m.dimNames, dims) || m.dims[metrics.DimFleet] != "${AWS::StackName}" {
				t.Errorf("widget %q: %s with dimensions %v, want %v with Fleet ${AWS::StackName}", m.widget, m.name, m.dims, dims)
			}
		case "AWS/SQS":
			q := m.dims["QueueName"]
			if len(m.dims) != 1 || (q != "${WorkQueue.QueueName}" && q != "${DeadLetterQueue.QueueName}") {
				t.Errorf("widget %q: %s of %v, want one of the stack's queues", m.widget, m.name, m.dims)
			}
			m.name += " " + q
		default:
			t.Errorf("widget %q: namespace %s", m.widget, m.namespace)
		}
		seen[m.name] = true
	}

	search := regexp.MustCompile(`^SEARCH\('\{(\w+),([\w,]+)\} MetricName="(\w+)" Fleet="\$\{AWS::StackName\}"', 'Sum', 60\)$`)
	word := regexp.MustCompile(`'[^']*'|"[^"]*"|[A-Za-z_]\w*(\s*\()?`)
	for widget, exprs := range expressions {
		for _, expr := range exprs {
			if strings.HasPrefix(expr, "SEARCH(") {
				m := search.FindStringSubmatch(expr)
				if m == nil || m[1] != metrics.Namespace {
					t.Errorf("widget %q: search %s: want {s3clone,DIMS} MetricName=\"M\" Fleet=\"${AWS::StackName}\"", widget, expr)
					continue
				}
				if dims := strings.Split(m[2], ","); !slices.Equal(dims, emitted[m[3]]) {
					t.Errorf("widget %q: search for %s by %v; the workers emit it by %v", widget, m[3], dims, emitted[m[3]])
				}
				seen[m[3]] = true
				continue
			}
			// Every bare name in an expression is the id of a metric of the
			// same widget (functions, quoted text aside).
			for _, w := range word.FindAllString(expr, -1) {
				if strings.HasSuffix(w, "(") || strings.HasPrefix(w, "'") || strings.HasPrefix(w, `"`) {
					continue
				}
				if !slices.Contains(ids[widget], w) {
					t.Errorf("widget %q: expression %s names %s, which is no metric id of the widget (%v)", widget, expr, w, ids[widget])
				}
			}
		}
	}

	for _, need := range []string{"Copies", "Bytes", "Throttles", "Workers", "Failures", "CopiesInFlight",
		"ApproximateNumberOfMessagesVisible ${WorkQueue.QueueName}", "ApproximateNumberOfMessagesVisible ${DeadLetterQueue.QueueName}"} {
		if !seen[need] {
			t.Errorf("the dashboard does not show %s", need)
		}
	}
	url := key(tpl.Outputs["DashboardUrl"])
	if !strings.Contains(url, "${Dashboard}") || !strings.Contains(url, "region=${AWS::Region}") {
		t.Errorf("DashboardUrl output %s: want a console link to the stack's dashboard", url)
	}
}
