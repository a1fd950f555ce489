// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Vm, VM_ADDRESS} from "./Vm.sol";

/**
 * @title Test
 * @notice The base of the ledger's forge tests: the cheatcodes, input bounding for fuzz tests,
 * and the target lists forge reads from an invariant test contract (the functions forge-std's
 * StdInvariant provides, under the same names and types).
 */
abstract contract Test {
    /// @dev forge reads these from an invariant test: the contracts (and selectors) it calls at random.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    Vm internal constant vm = Vm(VM_ADDRESS);

    /// @dev forge runs a contract's `test*`, `testFuzz*` and `invariant*` functions.
    bool public IS_TEST = true;

    address[] private _targetedContracts;
    FuzzSelector[] private _targetedSelectors;

    // ------------------------------------------------------------ invariant targets

    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }

    function targetContract(address target) internal {
        _targetedContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetedSelectors.push(selector);
    }

    // ------------------------------------------------------------ helpers

    /// @dev `x` mapped into [min, max] (both inclusive), keeping small values small as forge-std's bound does.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    /// @dev A labelled address derived from `name`, for readable traces.
    function makeAddr(string memory name) internal returns (address account) {
        account = vm.addr(uint256(keccak256(bytes(name))));
        vm.label(account, name);
    }
}
