package eval

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/adaptrec/adaptrec/model"
)

// Baselines are the models every other is compared with, by their names
// in results: the best of those in a run (by HR) is "the best baseline".
var Baselines = []string{"popularity", "itemknn", "sr", "sknn"}

// BestBaseline returns the index in rs of the baseline with the highest
// HR (the first of equals), or -1 if rs has none.
func BestBaseline(rs []Result) int {
	best := -1
	for i, r := range rs {
		if slices.Contains(Baselines, r.Model) && (best < 0 || r.HR > rs[best].HR) {
			best = i
		}
	}
	return best
}

// vsBest is r's HR over that of rs[best], "" if there is no best
// baseline or its HR is 0.
func vsBest(r Result, rs []Result, best int) string {
	if best < 0 || rs[best].HR == 0 {
		return ""
	}
	return strconv.FormatFloat(r.HR/rs[best].HR, 'f', 3, 64)
}

// Markdown writes the results as a Markdown table, each model's HR also
// as a ratio to the best baseline of the run, which a line below names.
func Markdown(w io.Writer, k int, rs []Result) error {
	var b strings.Builder
	best := BestBaseline(rs)
	fmt.Fprintf(&b, "| model | HR@%d | NDCG@%d | scored | parameters (mean) | parameters (final) | Q-network (mean) | HR@%d per kparam | HR@%d per Q-network kparam | events/s | train µs/event | decisions | MFLOP/list | lists by width | HR@%d ÷ best baseline |\n", k, k, k, k, k)
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %.4f | %.4f | %d | %.0f | %d | %.0f | %.5f | %.4f | %.0f | %.1f | %s | %s | %s | %s |\n",
			r.Model, r.HR, r.NDCG, r.Scored, r.ParamsMean, r.ParamsFinal, r.NetParamsMean, perKParam(r.HR, r.ParamsMean),
			perKParam(r.HR, r.NetParamsMean), r.EventsPerSec, r.TrainMicrosPerEvent(), decisions(r.Decisions), mflops(r.FLOPsPerList), r.WidthShare, vsBest(r, rs, best))
	}
	if best >= 0 {
		fmt.Fprintf(&b, "\nbest baseline (of %s in this run): %s, HR@%d %.4f\n", strings.Join(Baselines, ", "), rs[best].Model, k, rs[best].HR)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDecisions writes every architecture decision of the adaptive
// models to path, one JSON object per line with the model's name added.
func WriteDecisions(path string, rs []Result) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range rs {
		for _, d := range r.DecisionLog {
			if err := enc.Encode(struct {
				Model string `json:"model"`
				model.Decision
			}{r.Model, d}); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// CSVHeader is the header of results.csv.
var CSVHeader = []string{"model", "hr", "ndcg", "params_mean", "params_final", "events_per_s", "train_us_per_batch", "scored", "events", "batches", "k", "hr_per_kparam", "net_params_mean", "decisions", "train_us_per_event", "hr_per_net_kparam", "flops_per_list", "width_share", "best_baseline", "hr_vs_best_baseline"}

// WriteCSV writes one row per model to path.
func WriteCSV(path string, k int, rs []Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write(CSVHeader)
	best, bestName := BestBaseline(rs), ""
	if best >= 0 {
		bestName = rs[best].Model
	}
	for _, r := range rs {
		_ = w.Write([]string{
			r.Model, ff(r.HR), ff(r.NDCG), ff(r.ParamsMean), strconv.Itoa(r.ParamsFinal), ff(r.EventsPerSec),
			ff(r.TrainMicrosPerBatch), strconv.Itoa(r.Scored), strconv.Itoa(r.Events), strconv.Itoa(r.Batches), strconv.Itoa(k),
			ff(perKParam(r.HR, r.ParamsMean)), ff(r.NetParamsMean), decisions(r.Decisions),
			ff(r.TrainMicrosPerEvent()), ff(perKParam(r.HR, r.NetParamsMean)), ff(r.FLOPsPerList), r.WidthShare, bestName, vsBest(r, rs, best),
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// decisions renders decision counts as "add_layer:1 keep:12 widen:3".
func decisions(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// perKParam is quality per thousand parameters (0 for parameter-free models).
func perKParam(q, params float64) float64 {
	if params <= 0 {
		return 0
	}
	return q / (params / 1000)
}

func ff(x float64) string { return strconv.FormatFloat(x, 'f', 6, 64) }

// mflops renders FLOPs per list in millions, "" for a model that does not
// report them.
func mflops(f float64) string {
	if f == 0 {
		return ""
	}
	return strconv.FormatFloat(f/1e6, 'f', 3, 64)
}
