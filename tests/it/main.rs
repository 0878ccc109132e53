mod openspec_cli;
mod openspec_crash;
mod openspec_tools;
