"""The scheduling benchmark's light worker: copied into a bench image as `/app/worker`."""
