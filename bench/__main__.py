"""``python -m bench``: every benchmark, figures printed and written to bench/results.json."""

import json
import sys
from pathlib import Path

from bench import compare, engine, model_file, race, variance


def main() -> int:
    """Run the benchmarks in one process and print their figures as ratios."""
    results = {"engine": engine.main()}
    print(engine.report(results["engine"]))
    results["variance"] = variance.main()
    print(variance.report(results["variance"]))
    results["race"] = race.main()
    print(race.report(results["race"]))
    results["compare"] = compare.main()
    print(compare.report(results["compare"]))
    results["model_file"] = model_file.main()
    print(model_file.report(results["model_file"]))
    try:
        from bench import dashboard
    except ImportError:
        dashboard = None
    if dashboard is not None:
        from bench import dashboard_latents

        results["dashboard"] = dashboard.main()
        print(dashboard.report(results["dashboard"]))
        results["dashboard_latents"] = dashboard_latents.main()
        print(dashboard_latents.report(results["dashboard_latents"]))
        from bench import first_data, load

        results["first_data"] = first_data.main()
        print(first_data.report(results["first_data"]))
        results["load"] = load.main()
        print(load.report(results["load"]))
    out = Path(__file__).with_name("results.json")
    out.write_text(json.dumps(results, indent=1))
    print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
