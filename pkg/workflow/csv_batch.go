package workflow

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The CSV product inventory workflow (tasker-core's batch_processing_products_csv
// template): a batchable step counts a products file's data rows and splits them into
// row ranges, one batch worker per range sums the inventory figures of its rows, and a
// deferred convergence step adds up the workers' figures. The handlers are keyed by the
// template's callables, so the template runs unchanged.

// csvCallable is the callable prefix of tasker-core's CSV batch handlers.
const csvCallable = "tasker_example_rs::step_handlers::batch_processing_products_csv::"

func csvBatchHandlers() Registry {
	return Registry{
		csvCallable + "CsvAnalyzerHandler":          csvAnalyzer,
		csvCallable + "CsvBatchProcessorHandler":    csvBatchProcessor,
		csvCallable + "CsvResultsAggregatorHandler": csvResultsAggregator,
	}
}

// productColumns are the columns the CSV handlers read. They are found by header name,
// so their order does not matter and other columns (tasker-core's own products.csv has
// eleven) are ignored.
var productColumns = []string{"title", "category", "price", "stock", "rating"}

// product is one data row of a products file.
type product struct {
	title, category string
	price, rating   float64
	stock           int64
}

// productRow is a data row as read: its number (from 1), and its product or why it does
// not parse.
type productRow struct {
	n   int64
	p   product
	bad error
}

// productFile reads a products file: a header, then data rows numbered from 1.
type productFile struct {
	f    *os.File
	r    *csv.Reader
	col  map[string]int
	last int64 // the number of the last data row read
}

// openProducts opens path and reads its header, which must name every productColumns
// column. Errors are non-retryable ValidationErrors naming field (where the path came
// from).
func openProducts(path, field string) (*productFile, error) {
	if path == "" {
		return nil, validationError("MISSING_CSV_FILE_PATH", field+" is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, validationError("UNREADABLE_CSV_FILE", fmt.Sprintf("%s: %v", field, err))
	}
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		_ = f.Close()
		return nil, validationError("UNREADABLE_CSV_FILE", fmt.Sprintf("%s: %s: reading the header: %v", field, path, err))
	}
	col := map[string]int{}
	for i, h := range header {
		if _, dup := col[strings.TrimSpace(h)]; !dup {
			col[strings.TrimSpace(h)] = i
		}
	}
	for _, c := range productColumns {
		if _, ok := col[c]; !ok {
			_ = f.Close()
			return nil, validationError("INVALID_CSV_FILE", fmt.Sprintf("%s: %s: the header has no %q column (it needs %s)",
				field, path, c, strings.Join(productColumns, ", ")))
		}
	}
	return &productFile{f: f, r: r, col: col}, nil
}

func (pf *productFile) close() { _ = pf.f.Close() }

// next reads the next data row; io.EOF after the last. A row that is not valid CSV is a
// bad row, not an error.
func (pf *productFile) next() (productRow, error) {
	rec, err := pf.r.Read()
	var perr *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return productRow{n: pf.last}, io.EOF
	case err != nil && !errors.As(err, &perr):
		return productRow{n: pf.last}, err
	}
	pf.last++
	if err != nil {
		return productRow{n: pf.last, bad: fmt.Errorf("row %d: %w", pf.last, err)}, nil
	}
	p, bad := pf.parse(rec)
	if bad != nil {
		bad = fmt.Errorf("row %d: %w", pf.last, bad)
	}
	return productRow{n: pf.last, p: p, bad: bad}, nil
}

// parse reads a record's product: price and rating must be finite numbers, stock an
// integer.
func (pf *productFile) parse(rec []string) (product, error) {
	field := func(name string) string {
		if i := pf.col[name]; i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	p := product{title: field("title"), category: field("category")}
	var err error
	for _, f := range []struct {
		name string
		v    *float64
	}{{"price", &p.price}, {"rating", &p.rating}} {
		*f.v, err = strconv.ParseFloat(field(f.name), 64)
		if err != nil || math.IsInf(*f.v, 0) || math.IsNaN(*f.v) {
			return p, fmt.Errorf("%s %q is not a number", f.name, field(f.name))
		}
	}
	if p.stock, err = strconv.ParseInt(field("stock"), 10, 64); err != nil {
		return p, fmt.Errorf("stock %q is not an integer", field("stock"))
	}
	return p, nil
}

// countProducts counts a products file's data rows.
func countProducts(path, field string) (int64, error) {
	pf, err := openProducts(path, field)
	if err != nil {
		return 0, err
	}
	defer pf.close()
	for {
		if _, err := pf.next(); errors.Is(err, io.EOF) {
			return pf.last, nil
		} else if err != nil {
			return 0, validationError("UNREADABLE_CSV_FILE", fmt.Sprintf("%s: %s: %v", field, path, err))
		}
	}
}

// csvAnalyzer is the batchable step: it counts the data rows of context.csv_file_path
// and splits them into 1-based row ranges (end exclusive), or asks for no batches when
// there are fewer rows than batch_size.
func csvAnalyzer(_ context.Context, in StepInput) (any, error) {
	opt, err := intOptions(in.Initialization, "initialization", intSpec{"batch_size", 200, 1}, intSpec{"max_workers", 5, 1})
	if err != nil {
		return nil, err
	}
	var c struct {
		Path *string `json:"csv_file_path"`
	}
	if json.Unmarshal(in.Context, &c) != nil || c.Path == nil {
		return nil, validationError("MISSING_CSV_FILE_PATH", "context.csv_file_path is required")
	}
	rows, err := countProducts(*c.Path, "context.csv_file_path")
	if err != nil {
		return nil, err
	}
	if rows < opt["batch_size"] {
		return map[string]any{BatchKey: BatchOutcome{Type: OutcomeNoBatches}, "reason": "dataset_too_small",
			"total_rows": rows, "csv_file_path": *c.Path}, nil
	}
	size, cursors := planBatches(rows, opt["batch_size"], opt["max_workers"], 1)
	return map[string]any{
		BatchKey: BatchOutcome{Type: OutcomeCreateBatches, WorkerCount: len(cursors), CursorConfigs: cursors, TotalItems: rows,
			WorkerTemplateName: stringOption(in.Initialization, "worker_template_name", "process_csv_batch")},
		"worker_count": len(cursors), "actual_batch_size": size, "total_rows": rows, "csv_file_path": *c.Path,
	}, nil
}

// inventory is a batch's running figures; a checkpoint saves them as its partial.
type inventory struct {
	Processed       int64            `json:"processed_count"`
	Value           float64          `json:"inventory_value"`
	Categories      map[string]int64 `json:"category_counts"`
	MaxPrice        float64          `json:"max_price"`
	MaxPriceProduct string           `json:"max_price_product"`
	RatingSum       float64          `json:"rating_sum"`
	FailedRows      []int64          `json:"failed_rows"`
}

// add counts a product. The first product at the highest price keeps the maximum.
func (v *inventory) add(p product) {
	v.Processed++
	v.Value += p.price * float64(p.stock)
	v.Categories[p.category]++
	if p.price > v.MaxPrice {
		v.MaxPrice, v.MaxPriceProduct = p.price, p.title
	}
	v.RatingSum += p.rating
}

// cents rounds an amount of money to cents.
func cents(v float64) float64 { return math.Round(v*100) / 100 }

// analyzedPath is the csv_file_path of the analyze_csv step's result.
func analyzedPath(deps map[string]json.RawMessage) (string, error) {
	var r struct {
		Path string `json:"csv_file_path"`
	}
	raw, ok := deps["analyze_csv"]
	if !ok {
		return "", validationError("MISSING_DEPENDENCY_RESULT", "dependencies.analyze_csv: the analyzer's result is required")
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.Path == "" {
		return "", validationError("MISSING_CSV_FILE_PATH", "dependencies.analyze_csv.csv_file_path is required")
	}
	return r.Path, nil
}

// resumeInventory is where a worker starts: from its saved checkpoint and the figures it
// had reached, or from the start of its range with nothing counted.
func resumeInventory(saved json.RawMessage, w batchWorker) (inventory, int64) {
	fresh := inventory{Categories: map[string]int64{}}
	c, ok := savedCheckpoint(saved, w.start, w.end)
	if !ok {
		return fresh, w.start
	}
	var inv inventory
	if len(c.Partial) == 0 || json.Unmarshal(c.Partial, &inv) != nil {
		return fresh, w.start
	}
	if inv.Categories == nil {
		inv.Categories = map[string]int64{}
	}
	return inv, c.Cursor
}

// csvBatchProcessor is the batch worker: it sums the inventory figures of the data rows
// of its cursor range, applying its failure strategy to rows that do not parse, saving
// a checkpoint every items_per_checkpoint rows and resuming from one.
func csvBatchProcessor(ctx context.Context, in StepInput) (any, error) {
	w, err := readBatchWorker(in)
	if err != nil {
		return nil, err
	}
	if w.IsNoOp {
		return noOpResult(w), nil
	}
	opt, err := intOptions(w.settings, "initialization", intSpec{"items_per_checkpoint", 100, 0})
	if err != nil {
		return nil, err
	}
	path, err := analyzedPath(in.Dependencies)
	if err != nil {
		return nil, err
	}
	pf, err := openProducts(path, "dependencies.analyze_csv.csv_file_path")
	if err != nil {
		return nil, err
	}
	defer pf.close()
	inv, resume := resumeInventory(in.Checkpoint, w)
	if err := processRows(ctx, in, w, pf, &inv, resume, opt["items_per_checkpoint"]); err != nil {
		return nil, err
	}
	return inventoryResult(w, inv, resume), nil
}

// processRows counts the rows [resume, end) of pf into inv.
func processRows(ctx context.Context, in StepInput, w batchWorker, pf *productFile, inv *inventory, resume, every int64) error {
	for {
		r, err := pf.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", pf.f.Name(), err)
		}
		if r.n >= w.end {
			return nil
		}
		if r.n < resume {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("batch worker interrupted: %w", context.Cause(ctx))
		}
		if r.bad != nil && w.BatchMetadata.FailureStrategy == FailFast {
			return &StepError{ErrorType: "BatchItemError", ErrorCode: "BATCH_ITEM_FAILED",
				Message: fmt.Sprintf("batch %s: %v (failure_strategy fail_fast)", w.Cursor.BatchID, r.bad)}
		}
		if r.bad != nil {
			inv.FailedRows = append(inv.FailedRows, r.n)
		} else {
			inv.add(r.p)
		}
		if next := r.n + 1; every > 0 && (next-w.start)%every == 0 {
			partial, _ := json.Marshal(inv)
			if err := saveCheckpoint(ctx, in, checkpoint{Cursor: next, ItemsProcessed: next - w.start, Partial: partial}); err != nil {
				return err
			}
		}
	}
	if pf.last+1 < w.end {
		return validationError("CURSOR_OUT_OF_RANGE", fmt.Sprintf("inputs.cursor: rows [%d, %d) are past the last data row (%d) of %s",
			max(pf.last+1, w.start), w.end, pf.last, pf.f.Name()))
	}
	return nil
}

// inventoryResult is a worker's result. With failure_strategy isolate, a batch that
// had bad rows is marked isolated, for investigation.
func inventoryResult(w batchWorker, inv inventory, resume int64) map[string]any {
	avg := 0.0
	if inv.Processed > 0 {
		avg = inv.RatingSum / float64(inv.Processed)
	}
	failed := inv.FailedRows
	if failed == nil {
		failed = []int64{}
	}
	return map[string]any{"processed_count": inv.Processed, "total_inventory_value": cents(inv.Value),
		"category_counts": inv.Categories, "max_price": inv.MaxPrice, "max_price_product": inv.MaxPriceProduct,
		"average_rating": avg, "batch_id": w.Cursor.BatchID, "start_row": w.start, "end_row": w.end,
		"resumed_from": resume, "failed_rows": failed, "failure_strategy": w.BatchMetadata.FailureStrategy,
		"isolated": w.BatchMetadata.FailureStrategy == Isolate && len(failed) > 0}
}

// csvBatchResult is what the aggregator reads of a worker's result.
type csvBatchResult struct {
	NoOp            bool             `json:"no_op"`
	BatchID         string           `json:"batch_id"`
	Processed       int64            `json:"processed_count"`
	Value           float64          `json:"total_inventory_value"`
	Categories      map[string]int64 `json:"category_counts"`
	MaxPrice        float64          `json:"max_price"`
	MaxPriceProduct string           `json:"max_price_product"`
	AverageRating   float64          `json:"average_rating"`
	FailedRows      []int64          `json:"failed_rows"`
	Isolated        bool             `json:"isolated"`
}

// csvResultsAggregator is the deferred convergence step: it adds up the results of the
// workers (its dependencies named <worker_template_name>_<batch id>), in batch id order,
// so that of equal maximum prices the lowest batch's wins. The rating average is
// weighted by each batch's processed count. A no-op worker (no batches) adds nothing.
func csvResultsAggregator(_ context.Context, in StepInput) (any, error) {
	prefix := stringOption(in.Initialization, "worker_template_name", "process_csv_batch") + "_"
	var names []string
	for name := range in.Dependencies {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, validationError("MISSING_BATCH_RESULTS", fmt.Sprintf("dependencies: no batch worker results (%s*)", prefix))
	}
	sort.Strings(names)
	sum, workers, isolated := inventory{Categories: map[string]int64{}, FailedRows: []int64{}}, 0, []string{}
	for _, name := range names {
		var r csvBatchResult
		if err := json.Unmarshal(in.Dependencies[name], &r); err != nil {
			return nil, validationError("INVALID_DEPENDENCY_RESULT", fmt.Sprintf("dependencies.%s: %v", name, err))
		}
		if r.NoOp {
			continue
		}
		workers++
		sum.Processed += r.Processed
		sum.Value += r.Value
		for k, n := range r.Categories {
			sum.Categories[k] += n
		}
		if r.MaxPrice > sum.MaxPrice {
			sum.MaxPrice, sum.MaxPriceProduct = r.MaxPrice, r.MaxPriceProduct
		}
		sum.RatingSum += r.AverageRating * float64(r.Processed)
		sum.FailedRows = append(sum.FailedRows, r.FailedRows...)
		if r.Isolated {
			isolated = append(isolated, strings.TrimPrefix(name, prefix))
		}
	}
	sort.Slice(sum.FailedRows, func(i, j int) bool { return sum.FailedRows[i] < sum.FailedRows[j] })
	avg := 0.0
	if sum.Processed > 0 {
		avg = sum.RatingSum / float64(sum.Processed)
	}
	return map[string]any{"total_processed": sum.Processed, "total_inventory_value": cents(sum.Value),
		"category_counts": sum.Categories, "max_price": sum.MaxPrice, "max_price_product": sum.MaxPriceProduct,
		"overall_average_rating": avg, "worker_count": workers, "failed_rows": sum.FailedRows,
		"isolated_batches": isolated}, nil
}
