"""The folder that ``nnUNet_extTrainer`` points at (``medloss nnunet path``); nnU-Net imports its modules by bare
name."""
