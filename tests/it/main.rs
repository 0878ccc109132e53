mod openspec_cli;
