mod trace_export;
