"""The paper's experiments, one module each: its run, table and plot.

    figure1            Section 4.1: the MNIST MLP without and with BN
                       (accuracy, a last-layer sigmoid's input percentiles)
    figure3            Section 4.2.2: Figure 3's table, claims and plot from
                       run directories, and the CPU-scale ablation that
                       trains its runs
    lr_sweep           Section 3.3: BN permits higher learning rates
    scale_invariance   Section 3.3: BN((aW)u) = BN(Wu), on MNIST
    checkpoint_curve   Section 3.1: every checkpoint evaluated with the moving
                       averages and with Algorithm 2's population statistics

`setups` builds the trainer configs of the paper's runs (the config files in
`configs/` are thin `get_config` functions over it); `workdirs` finds and
reads back the run directories an experiment compares (through
`bn_zoo.runs`); `plotting` saves its matplotlib figures. The command-line
faces are `python -m trainers.<module>`; each parses its flags and calls the
functions here.
"""
