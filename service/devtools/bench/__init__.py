"""`steady bench`: what this machine does with Steady, measured end to end.

`run.py` drives the phases, `scratch.py` owns the throwaway database, broker and
processes, `standin.py` is the lean Twilio stand-in, `naive.py` the one-task-per-
message baseline, `report.py` prints the result.
"""
